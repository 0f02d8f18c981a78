"""One reply's usage, read as it passes: a tap on its SSE events (or NDJSON lines), or
its whole body. Never a re-parse of the whole stream: an event is decoded only when it
can state usage (its bytes name it); the rest are kept by reference, only until the
reply states its completion tokens, for the estimate of a reply that never does (an
abandoned stream, a backend that counts nothing)."""

from __future__ import annotations

from typing import Protocol

from eldric.roles.edge.usage import estimate
from eldric.roles.edge.usage.record import Tokens

# What a reply without usage keeps for its estimate; past it, 4 bytes count one token.
HELD_BYTES = 4 << 20


class Reader(Protocol):
    """One client API's usage: `read` an event (an SSE event, an NDJSON line, a whole
    body: its payload() decoded only when its bytes can state usage) into the meter;
    `text` is the content a payload carries."""

    def read(self, meter: Meter, data: bytes) -> None: ...
    def text(self, data: bytes) -> str: ...


class Meter:
    __slots__ = ("reader", "prompt", "completion", "cached", "prompt_stated",
                 "completion_stated", "done", "held", "held_bytes", "over_bytes", "events")

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.prompt = self.completion = self.cached = 0
        self.prompt_stated = self.completion_stated = False
        self.done = False  # the reply's own end was seen ([DONE], message_stop, done: true)
        self.held: list[bytes] = []
        self.held_bytes = self.over_bytes = 0
        self.events = 0

    # -- what the reply states (the readers call these)

    def stated(self, prompt: int | None, completion: int | None, cached: int = 0) -> None:
        if prompt is not None:
            self.prompt, self.cached, self.prompt_stated = prompt, cached, True
        if completion is not None:
            self.completion, self.completion_stated = completion, True
            self.held = []  # nothing left to estimate
            self.held_bytes = self.over_bytes = 0

    # -- the reply

    def tap(self, event: bytes) -> None:
        """One SSE event (without its blank line) or one NDJSON line, as it came: the
        readers search its bytes and take its payload out only to decode it."""
        self.events += 1
        if event.endswith(b"[DONE]"):
            self.done = True
            return
        self.reader.read(self, event)
        if not self.completion_stated:
            if self.held_bytes < HELD_BYTES:
                self.held.append(event)
                self.held_bytes += len(event)
            else:
                self.over_bytes += len(event)

    def whole(self, body: bytes) -> None:
        self.done = True
        body = body.lstrip()  # JSON: its payload is itself
        if body:
            self.reader.read(self, body)
            if not self.completion_stated:
                self.held.append(body)

    def tokens(self, request_body: bytes) -> Tokens:
        """What the reply used: as it stated, or estimated (prompt from the request, the
        completion from the content seen) where it did not."""
        estimated = False
        prompt, completion = self.prompt, self.completion
        if not self.prompt_stated:
            prompt, estimated = estimate.prompt_tokens(request_body), True
        if not self.completion_stated:
            text = self.reader.text
            completion = sum(estimate.text_tokens(text(payload(e))) for e in self.held)
            completion += self.over_bytes // 4
            estimated = True
        return Tokens(prompt=prompt, completion=completion, cached=self.cached,
                      estimated=estimated)


def count(v: int | None) -> int:
    """A stated count as the readers take it: a positive int, else 0 (a bool, a negative
    or a float from a backend is no count)."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def payload(event: bytes) -> bytes:
    """An event's data (its data: lines joined), or an NDJSON line (a whole body) itself;
    b"" for an event without data (a comment, a retry: hint)."""
    if event[:1] in (b"{", b"["):
        return event
    if b"data:" not in event:
        return b""
    if event.startswith(b"data:") and b"\n" not in event:  # the common case: one line
        return event[5:].strip()
    lines = [ln[5:].strip() for ln in event.splitlines() if ln.startswith(b"data:")]
    return b"\n".join(lines)
