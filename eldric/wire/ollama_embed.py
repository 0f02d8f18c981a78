"""Ollama's /api/embed (and the legacy /api/embeddings) over OpenAI's /v1/embeddings:
the Factories and their translation, pure, no I/O.

/api/embed takes `input` (a string or strings) and answers `{"model", "embeddings":
[[…], …], "total_duration", "load_duration", "prompt_eval_count"}`; /api/embeddings
takes one `prompt` and answers `{"embedding": […]}` (docs/api.md, api/types.go).
"""

from __future__ import annotations

import time

import msgspec

from eldric.errors import BadRequest
from eldric.wire import ollama_request as req
from eldric.wire.dialect import OLLAMA
from eldric.wire.ollama_reply import Unreadable

_encode = msgspec.json.encode


class _Vector(msgspec.Struct):
    embedding: list[float]
    index: int = 0


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None


class _Embeddings(msgspec.Struct):
    data: list[_Vector]
    usage: _Usage | None = None


_reply = msgspec.json.Decoder(_Embeddings)


class EmbedReply:
    """One /api/embed or /api/embeddings request's translation (a Translator)."""

    upstream_path = "/v1/embeddings"
    stream = False  # neither endpoint streams
    media_type = "application/json"

    def __init__(self, model: str, body: dict, *, legacy: bool):
        self.model = model
        self._body = body
        self._legacy = legacy
        self._start = time.monotonic_ns()

    def request(self) -> bytes:
        return _encode(self._body)

    def whole(self, body: bytes) -> bytes:
        try:
            reply = _reply.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Unreadable(f"the backend's reply is not an embedding list: {exc}") from None
        vectors = [v.embedding for v in sorted(reply.data, key=lambda v: v.index)]
        if self._legacy:
            return _encode({"embedding": vectors[0] if vectors else []})
        out: dict = {"model": self.model, "embeddings": vectors,
                     "total_duration": time.monotonic_ns() - self._start, "load_duration": 0}
        if reply.usage is not None and reply.usage.prompt_tokens is not None:
            out["prompt_eval_count"] = reply.usage.prompt_tokens
        return _encode(out)

    def feed(self, event: bytes) -> bytes:
        return b""  # an embeddings reply is never a stream

    def close(self) -> bytes:
        return b""

    def cut(self, status: int, message: str, code: str) -> bytes:
        return OLLAMA.error(status, message, code=code)


def embed(raw: bytes) -> EmbedReply:
    """POST /api/embed."""
    b = req.decode(raw, req.EmbedBody)
    inputs = b.input
    if isinstance(inputs, list) and not all(isinstance(s, str) for s in inputs):
        raise BadRequest("invalid input type: input must be a string or an array of strings",
                         param="input")
    if not inputs:
        raise BadRequest("input is empty: give a string or an array of strings to embed",
                         param="input")
    body: dict = {"model": b.model, "input": inputs}
    if b.dimensions is not None:
        body["dimensions"] = b.dimensions
    return EmbedReply(b.model, body, legacy=False)


def embeddings(raw: bytes) -> EmbedReply:
    """POST /api/embeddings (superseded by /api/embed, still called by older clients)."""
    b = req.decode(raw, req.EmbeddingsBody)
    if not b.prompt:
        raise BadRequest("prompt is empty: give the text to embed", param="prompt")
    return EmbedReply(b.model, {"model": b.model, "input": b.prompt}, legacy=True)
