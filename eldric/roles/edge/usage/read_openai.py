"""OpenAI's chat completions, completions and embeddings: `usage` (prompt_tokens,
completion_tokens, prompt_tokens_details.cached_tokens), in a whole reply or in the
stream's usage chunk (stream_options.include_usage; every other chunk may carry
"usage": null)."""

from __future__ import annotations

import msgspec

from eldric.roles.edge.usage.meter import Meter


class _Details(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _Details | None = None


class _Holder(msgspec.Struct):
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    message: _Delta | None = None
    text: str | None = None  # /v1/completions


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []


_usage = msgspec.json.Decoder(_Holder)
_chunk = msgspec.json.Decoder(_Chunk)


def _nat(v: int | None) -> int:
    return v if isinstance(v, int) and v > 0 else 0


class OpenAI:
    def __init__(self, embeddings: bool = False) -> None:
        self.embeddings = embeddings  # no completion: stated as 0 with the prompt

    def read(self, meter: Meter, data: bytes) -> None:
        if b'"usage"' not in data:
            return
        try:
            u = _usage.decode(data).usage
        except (msgspec.DecodeError, UnicodeDecodeError):
            return
        if u is None or u.prompt_tokens is None:
            return
        cached = _nat(u.prompt_tokens_details.cached_tokens) if u.prompt_tokens_details else 0
        completion = u.completion_tokens
        if completion is None and self.embeddings:
            completion = 0
        meter.stated(_nat(u.prompt_tokens), None if completion is None else _nat(completion),
                     cached)

    def text(self, data: bytes) -> str:
        if self.embeddings:
            return ""
        try:
            chunk = _chunk.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return ""
        out = []
        for c in chunk.choices:
            for d in (c.delta, c.message):
                if d is not None:
                    out.append(d.content or "")
                    out.append(d.reasoning_content or "")
            out.append(c.text or "")
        return "".join(out)


def usage_only(event: bytes) -> bool:
    """The stream's usage chunk (its choices empty), which a client that did not ask for
    it must not get: the edge asked for it to count."""
    if b'"usage"' not in event or b'"choices"' not in event:
        return False
    data = event[5:].strip() if event.startswith(b"data:") else event
    try:
        chunk = _chunk.decode(data)
        u = _usage.decode(data).usage
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    return not chunk.choices and u is not None
