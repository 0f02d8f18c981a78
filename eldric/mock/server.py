"""The `mock` backend: a deterministic OpenAI-compatible generator.

A test and benchmark backend, not inference: it answers the OpenAI API exactly in shape
(chat, completions, embeddings, models; streaming with usage) with made-up tokens, so a
fresh machine with no LLM server can run the whole path, the tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time

import msgspec
from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import error_json

MODEL = "eldric-mock"
_counter = itertools.count(1)
_enc = msgspec.json.Encoder()

_WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".")


class _Req(msgspec.Struct):
    model: str = MODEL
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream_options: dict | None = None
    messages: list[dict] | None = None
    prompt: str | list | None = None
    input: str | list | None = None


_dec = msgspec.json.Decoder(_Req)

MockConfigKey = web.AppKey("mock_config", dict)


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=error_json(status, message),
                        content_type="application/json")


async def _parse(request: web.Request, required: str) -> _Req | web.Response:
    """The body, or a 400: not a request, or without its `required` field (messages must
    not be empty either)."""
    try:
        req = _dec.decode(await request.read())
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return _error(400, f"invalid body: {exc}")
    value = getattr(req, required)
    if value is None or (required == "messages" and not value):
        return _error(400, f"{required} is required")
    return req


def _n_tokens(app: web.Application, req: _Req) -> int:
    n = app[MockConfigKey]["tokens"]
    cap = req.max_completion_tokens or req.max_tokens
    return min(n, cap) if cap else n


def _prompt_tokens(req: _Req) -> int:
    if req.messages:
        return sum(len(str(m.get("content", "")).split()) for m in req.messages) + 1
    return len(str(req.prompt or "").split()) + 1


def _usage(req: _Req, n: int) -> dict:
    p = _prompt_tokens(req)
    return {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}


async def chat(request: web.Request) -> web.StreamResponse:
    req = await _parse(request, "messages")
    return req if isinstance(req, web.Response) else await _generate(request, req, chat=True)


async def completions(request: web.Request) -> web.StreamResponse:
    req = await _parse(request, "prompt")
    return req if isinstance(req, web.Response) else await _generate(request, req, chat=False)


async def _generate(request: web.Request, req: _Req, *, chat: bool) -> web.StreamResponse:
    cfg = request.app[MockConfigKey]
    n = _n_tokens(request.app, req)
    delay = cfg["token_delay_ms"] / 1000
    rid = f"{'chatcmpl' if chat else 'cmpl'}-mock{next(_counter)}"
    created = int(time.time())
    words = [_WORDS[i % len(_WORDS)] for i in range(n)]
    finish = "length" if n < cfg["tokens"] else "stop"
    if not req.stream:
        if delay:
            await asyncio.sleep(delay * n)
        return json_response(_whole(req, rid, created, words, finish, chat))
    return await _stream(request, req, rid, created, words, finish, chat, delay)


def _whole(req: _Req, rid: str, created: int, words: list[str], finish: str,
           chat: bool) -> dict:
    text = "".join(words)
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "logprobs": None, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return {"id": rid, "object": "chat.completion" if chat else "text_completion",
            "created": created, "model": req.model, "choices": [choice],
            "usage": _usage(req, len(words))}


async def _stream(request: web.Request, req: _Req, rid: str, created: int, words: list[str],
                  finish: str, chat: bool, delay: float) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    obj = "chat.completion.chunk" if chat else "text_completion"
    include_usage = bool((req.stream_options or {}).get("include_usage"))

    def event(choice: dict | None, usage: dict | None = None) -> bytes:
        body = {"id": rid, "object": obj, "created": created, "model": req.model,
                "choices": [choice] if choice is not None else []}
        if usage is not None or include_usage:
            body["usage"] = usage
        return b"data: " + _enc.encode(body) + b"\n\n"

    if chat:
        await resp.write(event({"index": 0, "delta": {"role": "assistant", "content": ""},
                                "logprobs": None, "finish_reason": None}))
    for word in words:
        if delay:
            await asyncio.sleep(delay)
        if chat:
            choice = {"index": 0, "delta": {"content": word}, "logprobs": None,
                      "finish_reason": None}
        else:
            choice = {"index": 0, "text": word, "logprobs": None, "finish_reason": None}
        await resp.write(event(choice))
    last = ({"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish} if chat
            else {"index": 0, "text": "", "logprobs": None, "finish_reason": finish})
    await resp.write(event(last))
    if include_usage:
        await resp.write(event(None, _usage(req, len(words))))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def embeddings(request: web.Request) -> web.Response:
    req = await _parse(request, "input")
    if isinstance(req, web.Response):
        return req
    inputs = req.input if isinstance(req.input, list) else [req.input]
    data = []
    for i, text in enumerate(inputs):
        digest = hashlib.sha256(str(text).encode()).digest()
        data.append({"object": "embedding", "index": i,
                     "embedding": [round(b / 255 - 0.5, 6) for b in digest[:8]]})
    tokens = sum(len(str(t).split()) for t in inputs)
    body = {"object": "list", "data": data, "model": req.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return json_response(body)


async def models(request: web.Request) -> web.Response:
    body = {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                        "owned_by": "eldric-mock"}]}
    return json_response(body)


async def health(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def make_app(tokens: int = 16, token_delay_ms: float = 0) -> web.Application:
    app = web.Application()
    app[MockConfigKey] = {"tokens": tokens, "token_delay_ms": token_delay_ms}
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    return app
