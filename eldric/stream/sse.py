"""Server-Sent Events helpers: the terminal error event and a splitter for read-only taps."""

from __future__ import annotations

from collections.abc import Callable

import structlog

log = structlog.get_logger("eldric.stream")

Tap = Callable[[bytes], None]


def error_event(error_body: bytes) -> bytes:
    """One SSE event carrying an OpenAI error object; ends a stream that failed midway."""
    return b"data: " + error_body + b"\n\n"


def _first_event(buf: bytes) -> tuple[int, int]:
    """Where the first complete event in `buf` ends, and the length of the blank line
    after it (LF or CRLF framing, as SSE allows); (-1, 0) if none is complete yet."""
    i = buf.find(b"\n\n")
    j = buf.find(b"\r\n\r\n")
    if j >= 0 and (i < 0 or j < i):
        return j, 4
    return (i, 2) if i >= 0 else (-1, 0)


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
            end, blank = _first_event(buf)
            if end < 0:
                break
            event, buf = buf[:end], buf[end + blank:]
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
            end, blank = _first_event(buf)
            if end < 0:
                break
            event, buf = buf[:end + blank], buf[end + blank:]  # with its own blank line
            if not self._drop(event[:end]):
                out.append(event)
        self._buf = buf
        return b"".join(out)

    def close(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest if rest.strip() and not self._drop(rest) else b""
