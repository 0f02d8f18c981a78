"""A fake OpenAI-compatible server (as vLLM answers it), with knobs for failure tests.

Shapes follow the OpenAI API: /v1/models, /v1/chat/completions (plain and SSE, with
stream_options.include_usage; tool calls when Knobs.tool_calls says which, streamed as
OpenAI does: id and name first, then the arguments in pieces), /v1/completions,
/v1/embeddings, vLLM's /tokenize (chat messages in, {"count", "max_model_len", "tokens"}
out), and errors as {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

MODELS = ["meta-llama/Llama-3.2-3B-Instruct", "BAAI/bge-small-en"]


class Knobs:
    def __init__(self) -> None:
        self.tokens = 5
        self.delay = 0.0  # seconds between streamed tokens
        self.hold = 0.0  # seconds to wait before the first byte of a chat reply (a slow start)
        self.die_after = None  # close the connection after N streamed tokens
        self.fail_status = None  # answer every inference request with this status
        self.fail_body = None  # bytes of that error reply
        self.fail_headers: dict[str, str] = {}  # ... and its headers (a Retry-After)
        self.requests: list[dict] = []  # what arrived: path, headers, body
        self.disconnected = asyncio.Event()  # a client went away (its connection closed)
        self.cancelled_at: float | None = None
        self.api_key: str | None = None  # when set, every call needs "Bearer <api_key>"
        self.models = list(MODELS)
        self.tool_calls: list[tuple[str, str, str]] | None = None  # (id, name, arguments)
        self.answer: str | None = None  # "whole" or "sse": ignore the request's stream flag
        self.tokenize_status: int | None = None  # /tokenize answers this (404: a vLLM without it)
        self.usage = True  # False: a server that states no usage (nor the usage chunk)
        self.cached = 0  # prompt tokens served from its prompt cache (prompt_tokens_details)


KNOBS = web.AppKey("knobs", Knobs)


def _err(status: int, message: str, type_: str = "BadRequestError") -> web.Response:
    return web.json_response({"error": {"message": message, "type": type_, "param": None,
                                        "code": status}}, status=status)


async def _record(request: web.Request) -> tuple[Knobs, dict]:
    knobs = request.app[KNOBS]
    raw = await request.read()
    knobs.requests.append({"path": request.path, "headers": dict(request.headers),
                           "body": raw, "query": request.query_string})
    try:
        return knobs, json.loads(raw) if raw else {}
    except ValueError:  # bad JSON or bad UTF-8: vLLM answers 400, as OpenAI does
        raise web.HTTPBadRequest(
            text=json.dumps({"error": {"message": "could not decode the JSON body",
                                       "type": "BadRequestError", "param": None, "code": 400}}),
            content_type="application/json") from None


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "vllm", "root": m,
         "parent": None, "max_model_len": 8192, "permission": []}
        for m in request.app[KNOBS].models]})


async def chat(request: web.Request) -> web.StreamResponse:
    knobs, body = await _record(request)
    if knobs.fail_status:
        return web.Response(status=knobs.fail_status, body=knobs.fail_body,
                            content_type="application/json", headers=knobs.fail_headers)
    if body.get("model") not in knobs.models:
        return _err(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
    if knobs.hold:
        try:  # a backend still reading a long prompt: nothing sent yet
            await asyncio.sleep(knobs.hold)
        except asyncio.CancelledError:  # the test server cancels a handler whose client left
            _gone(knobs)
            raise
    words = [f" w{i}" for i in range(knobs.tokens)]
    created = int(time.time())
    calls, finish = knobs.tool_calls, "tool_calls" if knobs.tool_calls else "stop"
    streamed = body.get("stream") if knobs.answer is None else knobs.answer == "sse"
    if not streamed:
        message: dict = {"role": "assistant", "content": None if calls else "".join(words)}
        if calls:
            message["tool_calls"] = [{"id": i, "type": "function",
                                      "function": {"name": n, "arguments": a}}
                                     for i, n, a in calls]
        return web.json_response({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": created,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
            **_usage(knobs, len(words))})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)

    def chunk(delta: dict, finish=None) -> bytes:
        return ("data: " + json.dumps({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
            "model": body["model"], "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                 "finish_reason": finish}]}) + "\n\n").encode()
    try:
        await resp.write(chunk({"role": "assistant", "content": ""}))
        for j, (cid, name, args) in enumerate(calls or ()):
            await resp.write(chunk({"tool_calls": [{"index": j, "id": cid, "type": "function",
                                                    "function": {"name": name,
                                                                 "arguments": ""}}]}))
            for k in range(0, len(args), 8):
                await resp.write(chunk({"tool_calls": [{"index": j, "function": {
                    "arguments": args[k:k + 8]}}]}))
        for i, w in enumerate([] if calls else words):
            if knobs.die_after is not None and i == knobs.die_after:
                request.transport.close()  # the backend dies mid-stream
                return resp
            if knobs.delay:
                await asyncio.sleep(knobs.delay)
            await resp.write(chunk({"content": w}))
        await resp.write(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage") and knobs.usage:
            await resp.write(("data: " + json.dumps({
                "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                "model": body["model"], "choices": [],
                **_usage(knobs, len(words))}) + "\n\n").encode())
        await resp.write(b"data: [DONE]\n\n")
    except (asyncio.CancelledError, ConnectionResetError):
        _gone(knobs)
        raise
    return resp


def _usage(knobs: Knobs, completion: int) -> dict:
    if not knobs.usage:
        return {}
    usage: dict = {"prompt_tokens": 3, "completion_tokens": completion,
                   "total_tokens": 3 + completion}
    if knobs.cached:
        usage["prompt_tokens_details"] = {"cached_tokens": knobs.cached}
    return {"usage": usage}


def _gone(knobs: Knobs) -> None:
    knobs.cancelled_at = time.monotonic()
    knobs.disconnected.set()


async def completions(request: web.Request) -> web.Response:
    knobs, body = await _record(request)
    return web.json_response({
        "id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "text": " and so on", "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}})


async def embeddings(request: web.Request) -> web.Response:
    knobs, body = await _record(request)
    inputs = body["input"] if isinstance(body.get("input"), list) else [body.get("input")]
    return web.json_response({
        "object": "list", "model": body.get("model"),
        "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                 for i, _ in enumerate(inputs)],
        "usage": {"prompt_tokens": 2, "total_tokens": 2}})


async def rerank(request: web.Request) -> web.Response:
    """vLLM's /v1/rerank (its Jina/Cohere-compatible Re-rank API): `query` and
    `documents` required (400), results by relevance, best first, cut to `top_n`, each
    with its document's text unless `return_documents` is false; usage.total_tokens. The
    score here: how many of the query's words the document holds (a fake's)."""
    knobs, body = await _record(request)
    if knobs.fail_status:
        return web.Response(status=knobs.fail_status, body=knobs.fail_body,
                            content_type="application/json", headers=knobs.fail_headers)
    if body.get("model") is not None and body.get("model") not in knobs.models:
        return _err(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
    query, docs = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not isinstance(docs, list):
        return _err(400, "query (a string) and documents (a list) are required")
    texts = [d if isinstance(d, str) else (d or {}).get("text", "") for d in docs]
    words = set(query.lower().split())
    scored = sorted(((len(words & set(t.lower().split())) / (len(words) or 1), i)
                     for i, t in enumerate(texts)), key=lambda x: (-x[0], x[1]))
    top = body.get("top_n") or len(texts)
    results = [{"index": i, "relevance_score": score,
                **({"document": {"text": texts[i]}} if body.get("return_documents", True)
                   else {})} for score, i in scored[:top]]
    n = sum(len(t.split()) for t in [query, *texts])
    return web.json_response({"id": "rerank-fake", "model": body.get("model") or knobs.models[0],
                              "usage": {"total_tokens": n}, "results": results})


async def tokenize(request: web.Request) -> web.Response:
    """vLLM's /tokenize of chat messages: here one token per word of each message's text
    and one per message (a fake's count; the shape is vLLM's)."""
    knobs, body = await _record(request)
    if knobs.tokenize_status:  # as FastAPI answers a route it does not have
        return web.json_response({"detail": "Not Found"}, status=knobs.tokenize_status)
    if body.get("model") not in knobs.models:
        return _err(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
    n = 0
    for m in body.get("messages") or []:
        content = m.get("content") or ""
        texts = [content] if isinstance(content, str) else \
            [p.get("text", "") for p in content if isinstance(p, dict)]
        n += 1 + sum(len(t.split()) for t in texts)
    return web.json_response({"count": n, "max_model_len": 8192, "tokens": list(range(n))})


@web.middleware
async def _key_check(request: web.Request, handler):  # type: ignore[no-untyped-def]
    key = request.app[KNOBS].api_key
    if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
        return web.json_response({"error": {"message": "Incorrect API key provided.",
                                            "type": "invalid_request_error", "param": None,
                                            "code": "invalid_api_key"}}, status=401)
    return await handler(request)


def make_app() -> web.Application:
    app = web.Application(middlewares=[_key_check])
    app[KNOBS] = Knobs()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/rerank", rerank)
    app.router.add_post("/tokenize", tokenize)
    return app
