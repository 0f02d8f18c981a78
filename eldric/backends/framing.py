"""A native reply cut into the frames its Egress is fed (Outbound.framing).

- ``sse``: one Server-Sent Event, its bytes without the blank line that ends it
  (``event:``/``data:`` lines as the backend sent them), however the bytes were chunked
  on the wire (eldric.stream.sse.Framer, the core's own framer);
- ``ndjson``: one line without its line end; empty lines skipped;
- ``json``: the whole body once, at the end (an API that streams nothing);
- ``aws``: one AWS event-stream message (eldric.backends.eventstream, imported only for
  a backend that uses it).

Every cutter has ``feed(chunk) -> list[frame]`` and ``close() -> list[frame]`` (what is
left at the end of the body: an event without its blank line, a last line without its
newline, the whole JSON body). ``close`` of an aws cutter raises ValueError for a
partial message: a stream cut in the middle of one.
"""

from __future__ import annotations

from typing import Protocol

from eldric.stream.sse import LINE_END, Framer


class Frames(Protocol):
    def feed(self, chunk: bytes) -> list[bytes]: ...
    def close(self) -> list[bytes]: ...


class _Events:
    """SSE events, or NDJSON lines (``end=LINE_END``)."""

    __slots__ = ("_framer",)

    def __init__(self, framer: Framer) -> None:
        self._framer = framer

    def feed(self, chunk: bytes) -> list[bytes]:
        return [event[:n] for event, n in self._framer.feed(chunk) if n]

    def close(self) -> list[bytes]:
        rest = self._framer.rest().strip()
        return [rest] if rest else []


class _Whole:
    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        self._parts.append(chunk)
        return []

    def close(self) -> list[bytes]:
        body = b"".join(self._parts)
        self._parts.clear()
        return [body] if body else []


def frames(framing: str) -> Frames:
    """The cutter for an Outbound's framing."""
    if framing == "sse":
        return _Events(Framer())
    if framing == "ndjson":
        return _Events(Framer(LINE_END))
    if framing == "json":
        return _Whole()
    if framing == "aws":
        from eldric.backends.eventstream import Frames as AwsFrames  # part of eldric[aws]

        return AwsFrames()
    raise ValueError(f"unknown framing {framing!r}")
