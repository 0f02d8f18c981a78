"""A fake Ollama: its native GET /api/tags plus its OpenAI-compatible /v1 endpoints.

Shapes follow Ollama's API: /api/tags lists {"models": [{"name", "model", "modified_at",
"size", "digest", "details"}]}; /v1 answers as OpenAI does (system_fingerprint
"fp_ollama"); native-API errors are {"error": "..."}.
"""

from __future__ import annotations

import json
import time

from aiohttp import web

TAGS = ["llama3.2:3b", "nomic-embed-text:latest"]
PULLED = web.AppKey("pulled", list)  # the models this Ollama has (TAGS unless told)


async def tags(request: web.Request) -> web.Response:
    return web.json_response({"models": [
        {"name": t, "model": t, "modified_at": "2026-10-01T12:00:00.000000Z", "size": 2019393189,
         "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
         "details": {"parent_model": "", "format": "gguf", "family": "llama",
                     "families": ["llama"], "parameter_size": "3.2B",
                     "quantization_level": "Q4_K_M"}} for t in request.app[PULLED]]})


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if body.get("model") not in request.app[PULLED]:
        return web.json_response({"error": {
            "message": f'model "{body.get("model")}" not found, try pulling it first',
            "type": "not_found_error", "param": None, "code": None}}, status=404)
    created = int(time.time())
    if not body.get("stream"):
        return web.json_response({
            "id": "chatcmpl-42", "object": "chat.completion", "created": created,
            "model": body["model"], "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 26, "completion_tokens": 4, "total_tokens": 30}})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i, piece in enumerate(["Hello", " there", "!"]):
        await resp.write(("data: " + json.dumps({
            "id": "chatcmpl-42", "object": "chat.completion.chunk", "created": created,
            "model": body["model"], "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece},
                         "finish_reason": None}]}) + "\n\n").encode())
    await resp.write(("data: " + json.dumps({
        "id": "chatcmpl-42", "object": "chat.completion.chunk", "created": created,
        "model": body["model"], "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                     "finish_reason": "stop"}]}) + "\n\n").encode())
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def native_pull(request: web.Request) -> web.Response:
    return web.json_response({"error": "pull model manifest: file does not exist"}, status=500)


def make_app(models: list[str] | None = None) -> web.Application:
    app = web.Application()
    app[PULLED] = list(TAGS if models is None else models)
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/api/pull", native_pull)
    return app
