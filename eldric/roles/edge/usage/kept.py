"""A streamed reply kept for the request log (--request-log-bodies only): its events
are held by reference as they pass (bounded), and at the end their text becomes one
whole chat completion, the shape the filter plugins' outlet reads, so the log's copy
is redacted as a whole reply would be. Without the flag none of this exists."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from eldric.roles.edge.usage.meter import Meter, payload

LIMIT = 1 << 20  # bytes of events kept; past it the text is cut (marked "truncated")

_enc = msgspec.json.Encoder()


class Kept:
    __slots__ = ("meter", "events", "size", "truncated")

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.events: list[bytes] = []
        self.size = 0
        self.truncated = False

    def tap(self, event: bytes) -> None:
        self.meter.tap(event)
        if self.size < LIMIT:
            self.events.append(event)
            self.size += len(event)
        else:
            self.truncated = True

    def reply(self, model: str) -> bytes | None:
        if not self.events:
            return None
        text: Callable[[bytes], str] = self.meter.reader.text
        parts = [text(d) for e in self.events if (d := payload(e)) not in (b"", b"[DONE]")]
        doc: dict[str, object] = {"object": "chat.completion", "model": model, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "".join(parts)}}]}
        if self.truncated:
            doc["truncated"] = True
        return _enc.encode(doc)
