"""AWS event-stream framing (``application/vnd.amazon.eventstream``): the binary messages
Bedrock's ConverseStream and SageMaker's InvokeEndpointWithResponseStream answer with.

One message, every integer big-endian (https://docs.aws.amazon.com/lexv2/latest/dg/event-stream-encoding.html,
https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html)::

    total length    u32   the whole message, these four bytes and both CRCs included
    headers length  u32   the bytes of the headers section
    prelude CRC     u32   CRC32 of the eight bytes above
    headers               name length u8, name (UTF-8), value type u8, value
    payload               total - headers - 16 bytes
    message CRC     u32   CRC32 of every byte before it (prelude CRC included)

Header value types: 0 true, 1 false (no value bytes), 2 int8, 3 int16, 4 int32, 5 int64,
6 bytes and 7 string (a u16 length, then the bytes), 8 timestamp (int64 ms since the
epoch), 9 uuid (16 bytes). The CRC is CRC32 as gzip uses it (zlib.crc32).

A message's ``:message-type`` is ``event`` (its ``:event-type`` names the event: Bedrock's
``contentBlockDelta``, SageMaker's ``PayloadPart``), ``exception`` (``:exception-type``
names the modelled exception, the payload its JSON: ``throttlingException``) or
``error`` (``:error-code`` and ``:error-message`` headers, an unmodelled failure).

``Decoder`` is fed the reply's bytes as they arrive (any cut) and yields whole messages;
a bad CRC, a length that cannot be, an unknown header type is an ``EventStreamError``
(the stream is corrupt: the call ends it with an error event). ``frame()`` gives a
message in the form an Egress's ``feed`` takes (eldric/backends/egress.py). The limits
are the ones AWS's own SDK decoder enforces (botocore.eventstream): headers up to
128 KiB, a payload up to 24 MiB.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zlib import crc32

import msgspec

PRELUDE = 12  # total length, headers length, prelude CRC
OVERHEAD = 16  # the prelude and the message CRC
MAX_HEADERS = 128 * 1024
MAX_PAYLOAD = 24 * 1024 * 1024

_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_FIXED = {2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i"),
          5: struct.Struct(">q"), 8: struct.Struct(">q")}


class EventStreamError(ValueError):
    """The bytes are not a well-formed event stream (a CRC does not match, a length is
    out of bounds, a header cannot be read)."""


@dataclass(frozen=True)
class Timestamp:
    """A header of type 8: milliseconds since the epoch (kept apart from an int64)."""

    ms: int


@dataclass
class Message:
    headers: dict[str, Any]
    payload: bytes

    @property
    def kind(self) -> str:
        """``:message-type``: event, exception or error (event when it is missing)."""
        return str(self.headers.get(":message-type", "event"))


def _headers(data: memoryview) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i, end = 0, len(data)
    try:
        while i < end:
            n = data[i]
            name = bytes(data[i + 1:i + 1 + n]).decode()
            i += 1 + n
            kind = data[i]
            i += 1
            value: Any
            if kind == 0 or kind == 1:
                value = kind == 0
            elif kind in _FIXED:
                fmt = _FIXED[kind]
                if i + fmt.size > end:
                    raise EventStreamError(f"header {name!r} is cut short")
                value = fmt.unpack_from(data, i)[0]
                i += fmt.size
                if kind == 8:
                    value = Timestamp(value)
            elif kind == 6 or kind == 7:
                (length,) = _U16.unpack_from(data, i)
                i += 2
                if i + length > end:
                    raise EventStreamError(f"header {name!r} is cut short")
                raw = bytes(data[i:i + length])
                value = raw.decode() if kind == 7 else raw
                i += length
            elif kind == 9:
                if i + 16 > end:
                    raise EventStreamError(f"header {name!r} is cut short")
                value = uuid.UUID(bytes=bytes(data[i:i + 16]))
                i += 16
            else:
                raise EventStreamError(f"header {name!r} has unknown value type {kind}")
            if name in out:
                raise EventStreamError(f"header {name!r} appears twice")
            out[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise EventStreamError(f"unreadable headers: {e}") from None
    return out


# A stream repeats the same few header sections (":event-type contentBlockDelta", …):
# each is read once. Message.headers is therefore shared and must not be changed.
_SEEN: dict[bytes, dict[str, Any]] = {}
_SEEN_MAX = 256


class Decoder:
    """Whole messages from a byte stream cut anywhere (their ``headers`` read-only)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a message not yet whole (a stream ending here was cut)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf
        buf += data
        out: list[Message] = []
        start = 0
        view = memoryview(buf)
        try:
            while len(buf) - start >= PRELUDE:
                total, hlen, pcrc = _PRELUDE.unpack_from(buf, start)
                if crc32(view[start:start + 8]) != pcrc:
                    raise EventStreamError(
                        f"prelude checksum mismatch (sent 0x{pcrc:08x}, computed "
                        f"0x{crc32(view[start:start + 8]):08x})")
                if hlen > MAX_HEADERS:
                    raise EventStreamError(f"headers of {hlen} bytes exceed {MAX_HEADERS}")
                if total < OVERHEAD + hlen or total - OVERHEAD - hlen > MAX_PAYLOAD:
                    raise EventStreamError(
                        f"message length {total} does not fit headers of {hlen} bytes "
                        f"and a payload of at most {MAX_PAYLOAD}")
                if len(buf) - start < total:
                    break
                end = start + total
                (mcrc,) = _U32.unpack_from(buf, end - 4)
                got = crc32(view[start:end - 4])
                if got != mcrc:
                    raise EventStreamError(f"message checksum mismatch (sent 0x{mcrc:08x}, "
                                           f"computed 0x{got:08x})")
                hend = start + PRELUDE + hlen
                raw = bytes(view[start + PRELUDE:hend])
                headers = _SEEN.get(raw)
                if headers is None:
                    headers = _headers(memoryview(raw))
                    if len(_SEEN) < _SEEN_MAX:
                        _SEEN[raw] = headers
                out.append(Message(headers, bytes(view[hend:end - 4])))
                start = end
        finally:
            view.release()
        if start:
            del buf[:start]
        return out


def frame(msg: Message) -> bytes:
    """A message as an Egress's ``feed`` takes it (eldric/backends/egress.py): an event
    ``b"<event-type>\\n" + payload``; a modelled exception ``b"!<exception-type>\\n" +
    payload``; an ``error`` message ``b"!<error-code>\\n" + {"message": <error-message>}``."""
    kind = msg.kind
    if kind == "exception":
        return b"!" + str(msg.headers.get(":exception-type", "")).encode() + b"\n" + msg.payload
    if kind == "error":
        body = msgspec.json.encode({"message": str(msg.headers.get(":error-message", ""))})
        return b"!" + str(msg.headers.get(":error-code", "")).encode() + b"\n" + body
    return str(msg.headers.get(":event-type", "")).encode() + b"\n" + msg.payload


def split(frame_: bytes) -> tuple[str, bool, bytes]:
    """A frame (see frame()) as (event or exception type, is an exception, payload)."""
    head, _, payload = frame_.partition(b"\n")
    if head.startswith(b"!"):
        return head[1:].decode(), True, payload
    return head.decode(), False, payload


# --- encoding: what AWS sends (the fakes, the figures) ------------------------------

def _header(name: str, value: Any) -> bytes:
    raw = name.encode()
    head = bytes((len(raw),)) + raw
    if isinstance(value, bool):
        return head + (b"\x00" if value else b"\x01")
    if isinstance(value, Timestamp):
        return head + b"\x08" + _FIXED[8].pack(value.ms)
    if isinstance(value, int):
        return head + b"\x04" + _FIXED[4].pack(value)
    if isinstance(value, uuid.UUID):
        return head + b"\x09" + value.bytes
    data = value if isinstance(value, bytes) else str(value).encode()
    return head + (b"\x06" if isinstance(value, bytes) else b"\x07") + _U16.pack(len(data)) + data


def encode(headers: Mapping[str, Any], payload: bytes) -> bytes:
    """One message (str values as type 7, bytes 6, bool 0/1, int 4, Timestamp 8, UUID 9)."""
    hdr = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", OVERHEAD + len(hdr) + len(payload), len(hdr))
    body = prelude + _U32.pack(crc32(prelude)) + hdr + payload
    return body + _U32.pack(crc32(body))


def event(event_type: str, payload: bytes, content_type: str = "application/json") -> bytes:
    """An event message as AWS sends one (headers in the order its services send them)."""
    return encode({":event-type": event_type, ":content-type": content_type,
                   ":message-type": "event"}, payload)


def exception(exception_type: str, payload: bytes) -> bytes:
    """A modelled exception message (``:message-type exception``)."""
    return encode({":exception-type": exception_type, ":content-type": "application/json",
                   ":message-type": "exception"}, payload)


class Frames:
    """The cutter eldric/backends/framing.py uses for ``aws``: reply bytes in, frames
    (see frame()) out. ``close`` raises EventStreamError (a ValueError) when the reply
    ended inside a message: the stream was cut."""

    __slots__ = ("_dec",)

    def __init__(self) -> None:
        self._dec = Decoder()

    def feed(self, chunk: bytes) -> list[bytes]:
        return [frame(m) for m in self._dec.feed(chunk)]

    def close(self) -> list[bytes]:
        if self._dec.pending:
            raise EventStreamError(f"the stream ended inside a message "
                                   f"({self._dec.pending} bytes of it)")
        return []
