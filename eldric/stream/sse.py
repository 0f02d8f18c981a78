"""Server-Sent Events helpers: the terminal error event and a splitter for read-only taps."""

from __future__ import annotations

from collections.abc import Callable

import structlog

log = structlog.get_logger("eldric.stream")

Tap = Callable[[bytes], None]


def error_event(error_body: bytes) -> bytes:
    """One SSE event carrying an OpenAI error object; ends a stream that failed midway."""
    return b"data: " + error_body + b"\n\n"


class EventSplitter:
    """Feeds complete SSE events (without the blank line) to a tap, however the bytes
    were chunked on the wire. The bytes sent on are never changed by it."""

    __slots__ = ("_buf", "_tap", "_broken")

    def __init__(self, tap: Tap):
        self._buf = b""
        self._tap = tap
        self._broken = False

    def feed(self, chunk: bytes) -> None:
        if self._broken:
            return
        buf = self._buf + chunk
        while not self._broken:
            i = buf.find(b"\n\n")
            j = buf.find(b"\r\n\r\n")
            if i < 0 and j < 0:
                break
            if j >= 0 and (i < 0 or j < i):
                event, buf = buf[:j], buf[j + 4:]
            else:
                event, buf = buf[:i], buf[i + 2:]
            self._call(event)
        self._buf = b"" if self._broken else buf

    def close(self) -> None:
        if self._buf.strip():
            self._call(self._buf)
        self._buf = b""

    def _call(self, event: bytes) -> None:
        try:
            self._tap(event)
        except Exception as exc:  # a tap only reads; its failure must not break a stream
            self._broken = True
            log.error("stream_tap_failed", error=repr(exc))


class EventFilter:
    """Rebuilds an SSE stream without the events `drop` selects (e.g. a usage chunk the
    client did not ask for). Only used when a caller asks for it: it re-frames the
    stream event by event instead of relaying chunks as they came."""

    __slots__ = ("_buf", "_drop")

    def __init__(self, drop: Callable[[bytes], bool]):
        self._buf = b""
        self._drop = drop

    def feed(self, chunk: bytes) -> bytes:
        buf = self._buf + chunk
        out = []
        while True:
            i = buf.find(b"\n\n")
            if i < 0:
                break
            event, buf = buf[: i + 2], buf[i + 2:]
            if not self._drop(event[:-2]):
                out.append(event)
        self._buf = buf
        return b"".join(out)

    def close(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest if rest.strip() and not self._drop(rest) else b""
