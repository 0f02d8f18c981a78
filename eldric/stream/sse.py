"""Server-Sent Events helpers: the one framer that splits a stream into events, for
read-only taps (EventSplitter), for the filter that drops some (EventFilter), and for a
client API's translator (Translating; the error events are eldric.wire.dialect's)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from eldric.stream.client import ProtocolError
from eldric.wire import openai_reply

if TYPE_CHECKING:
    from eldric.wire.translate import Translator

log = structlog.get_logger("eldric.stream")

Tap = Callable[[bytes], None]

# The blank line that ends an event: LF or CRLF framing, as SSE allows. The leftmost
# match is the first event's end, whichever framing the upstream uses.
_END = re.compile(rb"\r\n\r\n|\n\n")
# The end of a line: NDJSON's framing (Ollama's streams), one JSON value a line.
LINE_END = re.compile(rb"\r?\n")


class Framer:
    """Splits SSE bytes into events, however they were chunked on the wire, in time linear
    in the bytes: one buffer, appended to, searched from where the last search stopped
    (less the three bytes a blank line may have begun with), and cut once per chunk."""

    __slots__ = ("_buf", "_scan", "_end")

    def __init__(self, end: re.Pattern[bytes] = _END) -> None:
        self._buf = bytearray()
        self._scan = 0  # no event ends before this offset in _buf
        self._end = end  # what ends an event: a blank line (SSE), or a line end (NDJSON)

    def feed(self, chunk: bytes) -> list[tuple[bytes, int]]:
        """The events `chunk` completes: each as (its bytes with the blank line after it,
        the length without)."""
        buf = self._buf
        buf += chunk
        events = []
        start = 0
        search = self._end.search
        match = search(buf, self._scan)
        while match is not None:
            end = match.end()
            events.append((bytes(buf[start:end]), match.start() - start))
            start = end
            match = search(buf, start)
        if start:
            del buf[:start]
        self._scan = max(0, len(buf) - 3)
        return events

    def rest(self) -> bytes:
        """What is left when the stream ends (an event without its blank line), emptied."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return rest


class EventSplitter:
    """Feeds complete SSE events (without the blank line) to a tap, however the bytes
    were chunked on the wire; with `end=LINE_END`, NDJSON lines (without the line end;
    empty lines skipped). The bytes sent on are never changed by it."""

    __slots__ = ("_framer", "_tap", "_broken")

    def __init__(self, tap: Tap, end: re.Pattern[bytes] = _END):
        self._framer = Framer(end)
        self._tap = tap
        self._broken = False

    def feed(self, chunk: bytes) -> None:
        if not self._broken:
            self.events(self._framer.feed(chunk))

    def events(self, events: list[tuple[bytes, int]]) -> None:
        """Events framed already (EventFilter's, which taps and filters in one pass)."""
        if self._broken:
            return
        for event, n in events:
            if n:
                self._call(event[:n])
            if self._broken:
                return

    def close(self) -> None:
        rest = self._framer.rest()
        if rest.strip() and not self._broken:
            self._call(rest)

    def _call(self, event: bytes) -> None:
        try:
            self._tap(event)
        except Exception as exc:  # a tap only reads; its failure must not break a stream
            self._broken = True
            self._framer.rest()  # nothing more is buffered for it
            log.error("stream_tap_failed", error=repr(exc))


class EventFilter:
    """Rebuilds an SSE stream without the events `drop` selects (e.g. a usage chunk the
    client did not ask for). Only used when a caller asks for it: it re-frames the
    stream event by event instead of relaying chunks as they came. With `tap`, each event
    is shown to it first, dropped or not (one framing for both: EventSplitter's tap)."""

    __slots__ = ("_framer", "_drop", "_splitter")

    def __init__(self, drop: Callable[[bytes], bool], tap: Tap | None = None):
        self._framer = Framer()
        self._drop = drop
        self._splitter = EventSplitter(tap) if tap is not None else None

    def feed(self, chunk: bytes) -> bytes:
        drop = self._drop
        events = self._framer.feed(chunk)
        if self._splitter is not None:
            self._splitter.events(events)
        return b"".join([event for event, n in events if not drop(event[:n])])

    def close(self) -> bytes:
        rest = self._framer.rest()
        if self._splitter is not None:
            if rest.strip():
                self._splitter.events([(rest, len(rest))])
            self._splitter.close()
        return rest if rest.strip() and not self._drop(rest) else b""


class Untranslatable(ProtocolError):
    """An upstream stream the client's translator cannot read: the upstream's failure
    (the core fails over before the first byte, or ends the stream in the client API's
    error event after it), never a broken reply."""


class Translating:
    """An SSE stream through a client API's translator (eldric.wire.translate): upstream
    events in, the client's bytes out, with EventFilter's feed/close so the core's one
    relay loop carries it; `tap` sees what the client gets."""

    __slots__ = ("_framer", "_translate", "_splitter")

    def __init__(self, translate: Translator, tap: Tap | None = None):
        self._framer = Framer()
        self._translate = translate
        self._splitter = EventSplitter(tap) if tap is not None else None

    def feed(self, chunk: bytes) -> bytes:
        feed = self._translate.feed
        try:
            out = b"".join([feed(event[:n]) for event, n in self._framer.feed(chunk)])
        except Exception as exc:  # what the upstream sent is not what its API promises
            raise Untranslatable(f"{type(exc).__name__} translating its stream") from exc
        return self._tapped(out)

    def close(self) -> bytes:
        rest = self._framer.rest()
        try:
            out = (self._translate.feed(rest) if rest.strip() else b"") + self._translate.close()
        except Exception as exc:
            raise Untranslatable(f"{type(exc).__name__} translating its stream") from exc
        out = self._tapped(out)
        if self._splitter is not None:
            self._splitter.close()
        return out

    def _tapped(self, out: bytes) -> bytes:
        if out and self._splitter is not None:
            self._splitter.feed(out)
        return out


def made_whole(translate: Translator, data: bytes, is_sse: bool, tap: Tap | None) -> bytes:
    """A reply read whole, translated: whole JSON for a whole request (an SSE reply
    gathered into the completion it adds up to first), the client's whole stream for a
    streamed one (a JSON reply cut into the chunks it would have streamed first)."""
    if not translate.stream:
        return translate.whole(openai_reply.gathered(
            [e[:n] for e, n in Framer().feed(data + b"\n\n")]) if is_sse else data)
    events = openai_reply.as_chunks(data)
    stage = Translating(translate, tap)
    return stage.feed(b"".join(e + b"\n\n" for e in events)) + stage.close()
