"""OpenAI's chat completions, completions and embeddings: `usage` (prompt_tokens,
completion_tokens, prompt_tokens_details.cached_tokens), in a whole reply or in the
stream's usage chunk (stream_options.include_usage; every other chunk may carry
"usage": null)."""

from __future__ import annotations

import msgspec

from eldric.roles.edge.usage.meter import Meter, count, payload
from eldric.wire.openai_reply import Usage


class _Holder(msgspec.Struct):
    usage: Usage | None = None


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


class OpenAI:
    def __init__(self, embeddings: bool = False) -> None:
        self.embeddings = embeddings  # no completion: stated as 0 with the prompt

    def read(self, meter: Meter, data: bytes) -> None:
        if b'"usage"' not in data or b'"usage":null' in data or b'"usage": null' in data:
            return  # a content chunk (asked for usage, each one says "usage": null)
        try:
            u = _usage.decode(payload(data)).usage
        except (msgspec.DecodeError, UnicodeDecodeError):
            return
        if u is None or u.prompt_tokens is None:
            return
        cached = count(u.prompt_tokens_details.cached_tokens) if u.prompt_tokens_details else 0
        completion = u.completion_tokens
        if completion is None and self.embeddings:
            completion = 0
        meter.stated(count(u.prompt_tokens), None if completion is None else count(completion),
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
    if b'"choices":[]' not in event and b'"choices": []' not in event:
        return False  # every other event, at the cost of two byte searches
    data = payload(event)
    try:
        chunk = _chunk.decode(data)
        u = _usage.decode(data).usage
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    return not chunk.choices and u is not None


class _RerankUsage(msgspec.Struct):
    prompt_tokens: int | None = None
    total_tokens: int | None = None


class _RerankHolder(msgspec.Struct):
    usage: _RerankUsage | None = None


_rerank = msgspec.json.Decoder(_RerankHolder)


class Rerank:
    """/v1/rerank (one whole reply): ``usage.prompt_tokens`` (llama.cpp's), else
    ``usage.total_tokens`` (vLLM's, Jina's), all prompt; nothing is generated. A reply
    without usage (Cohere's states billed search units, not tokens) is estimated from
    the request."""

    def read(self, meter: Meter, data: bytes) -> None:
        if b'"usage"' not in data:
            return
        try:
            u = _rerank.decode(payload(data)).usage
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return
        n = None if u is None else u.prompt_tokens if u.prompt_tokens is not None \
            else u.total_tokens
        if n is not None:
            meter.stated(count(n), 0)

    def text(self, data: bytes) -> str:
        return ""
