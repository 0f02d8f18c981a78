"""OpenAI's /v1/embeddings for native translators, both ways: a request's inputs and
settings read once (https://platform.openai.com/docs/api-reference/embeddings/create),
the reply's list written once (OpenAI's ``base64`` encoding: the little-endian float32s,
base64-encoded, what its SDK asks for by default and decodes)."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

import msgspec

from eldric.errors import BadRequest


@dataclass
class Request:
    texts: list[str]
    dimensions: int | None
    base64: bool  # encoding_format base64


def read(body: Any) -> Request:
    """An OpenAI embeddings body; BadRequest naming the parameter for what a native API
    cannot take (token arrays)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("input must be a string or a non-empty array of strings (token "
                         "arrays are not supported by this model's backend)", param="input")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise BadRequest("dimensions must be a positive integer", param="dimensions")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise BadRequest("encoding_format must be float or base64", param="encoding_format")
    return Request(texts, dims, fmt == "base64")


def reply(vectors: list[list[float]], model: str, prompt_tokens: int, as_base64: bool) -> bytes:
    """OpenAI's embeddings list."""
    data = [{"object": "embedding", "index": i,
             "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
             if as_base64 else v} for i, v in enumerate(vectors)]
    return msgspec.json.encode({"object": "list", "data": data, "model": model,
                                "usage": {"prompt_tokens": prompt_tokens,
                                          "total_tokens": prompt_tokens}})
