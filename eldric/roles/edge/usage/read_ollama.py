"""Ollama's native API (/api/chat, /api/generate, /api/embed): the `done` line (or the
whole reply) states prompt_eval_count (prompt) and eval_count (completion); the content
is message.content (chat) or response (generate). NDJSON: one JSON object a line."""

from __future__ import annotations

import msgspec

from eldric.roles.edge.usage.meter import Meter, count, payload


class _Message(msgspec.Struct):
    content: str | None = None
    thinking: str | None = None


class _Line(msgspec.Struct):
    done: bool = False
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    message: _Message | None = None
    response: str | None = None
    thinking: str | None = None


_line = msgspec.json.Decoder(_Line)


class Ollama:
    def __init__(self, embed: bool = False) -> None:
        self.embed = embed  # /api/embed: no completion, and no `done`

    def read(self, meter: Meter, data: bytes) -> None:
        if b'"prompt_eval_count"' not in data and b'"eval_count"' not in data:
            if b'"done":true' in data or b'"done": true' in data:
                meter.done = True
            return
        try:
            line = _line.decode(payload(data))
        except (msgspec.DecodeError, UnicodeDecodeError):
            return
        meter.done = meter.done or line.done
        if line.prompt_eval_count is not None or line.eval_count is not None:
            completion = line.eval_count
            prompt = line.prompt_eval_count  # absent when the whole prompt was cached
            meter.stated(None if prompt is None else count(prompt),
                         0 if completion is None and self.embed else
                         None if completion is None else count(completion))

    def text(self, data: bytes) -> str:
        if self.embed:
            return ""
        try:
            line = _line.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return ""
        m = line.message
        return ((m.content or "") + (m.thinking or "") if m is not None else "") + \
            (line.response or "") + (line.thinking or "")
