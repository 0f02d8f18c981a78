"""A fake OpenAI /v1/embeddings server whose vectors mean something: each word of an
input adds 1 to a hashed dimension (a bag of words), so texts sharing words are near in
cosine. The reply has the OpenAI API's shape ({"object": "list", "data": [{"object":
"embedding", "index", "embedding"}], "model", "usage"}); knobs make it slow or failing,
or set chosen vectors per text. `embedding` is a list of floats, or with
`encoding_format: "base64"` the little-endian float32 bytes in base64, as OpenAI sends
them (the openai SDK asks for base64 by default)."""

from __future__ import annotations

import asyncio
import base64
import re
import struct
import zlib

from aiohttp import web

DIMS = 128
_WORD = re.compile(r"[a-z]+")


class Knobs:
    def __init__(self) -> None:
        self.delay = 0.0
        self.fail_status: int | None = None
        self.garbage = False  # 200 with a body that is not an embeddings list
        self.calls = 0
        self.inputs: list[str] = []
        self.vectors: dict[str, list[float]] = {}  # chosen vectors (else bag of words)
        self.formats: list[str] = []  # each call's encoding_format


KNOBS = web.AppKey("embedding_knobs", Knobs)


def vector(text: str) -> list[float]:
    v = [0.0] * DIMS
    for w in _WORD.findall(text.lower()):
        v[zlib.crc32(w.encode()) % DIMS] += 1.0
    return v


async def embeddings(request: web.Request) -> web.Response:
    k = request.app[KNOBS]
    k.calls += 1
    body = await request.json()
    if k.delay:
        await asyncio.sleep(k.delay)
    if k.fail_status:
        return web.json_response({"error": {"message": "The server had an error",
                                            "type": "server_error", "param": None,
                                            "code": None}}, status=k.fail_status)
    if k.garbage:
        return web.json_response({"object": "list", "data": "nope"})
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    k.inputs += inputs
    fmt = body.get("encoding_format", "float")
    k.formats.append(fmt)
    data = []
    for i, text in enumerate(inputs):
        vec = k.vectors.get(text) or vector(text)
        emb: object = vec
        if fmt == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return web.json_response({
        "object": "list", "model": body["model"], "data": data,
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})


def make_app() -> web.Application:
    app = web.Application()
    app[KNOBS] = Knobs()
    app.router.add_post("/v1/embeddings", embeddings)
    return app
