"""A fake eldric worker: /health answers a WorkerHealth (with a settable load), /v1/models
and /v1/chat/completions answer as the OpenAI API does. Knobs make it slow or failing."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web


class Knobs:
    def __init__(self, name: str, models: list[str], cpu: float | None = None) -> None:
        self.name = name
        self.models = models
        self.cpu = cpu
        self.max_concurrency: int | None = None
        self.delay = 0.0
        self.fail_status: int | None = None
        self.health_status: int | None = None  # /health answers this status when set
        self.paths: list[str] | None = None  # advertised in /health when set
        self.not_here: set[str] = set()  # paths answered 501 as llama.cpp does
        self.seen: list[str] = []  # every /v1/* path it was sent (other than chat)
        self.hits = 0
        self.bodies: list[dict] = []


KNOBS = web.AppKey("knobs", Knobs)


async def health(request: web.Request) -> web.Response:
    k = request.app[KNOBS]
    if k.health_status:
        return web.json_response({"status": "unhealthy"}, status=k.health_status)
    return web.json_response({"paths": k.paths,
        "status": "healthy", "worker_id": k.name, "worker_type": "inference",
        "backend": {"type": "mock", "url": "http://127.0.0.1:1", "healthy": True},
        "models": k.models,
        "load": {"cpu_percent": k.cpu, "memory_percent": 20.0, "gpu_percent": None,
                 "gpu_memory_percent": None, "active_requests": 0,
                 "max_concurrency": k.max_concurrency},
        "uptime_seconds": 1.0})


async def list_models(request: web.Request) -> web.Response:
    k = request.app[KNOBS]
    return web.json_response({"object": "list", "data": [
        {"id": m, "object": "model", "created": 0, "owned_by": k.name} for m in k.models]})


async def chat(request: web.Request) -> web.StreamResponse:
    k = request.app[KNOBS]
    body = await request.json()
    k.hits += 1
    k.bodies.append(body)
    if k.fail_status:
        return web.json_response({"error": {"message": f"{k.name} failing", "type": "api_error",
                                            "param": None, "code": None}},
                                 status=k.fail_status)
    if body["model"] not in k.models:
        return web.json_response({"error": {"message": f"model {body['model']} not here",
                                            "type": "not_found_error", "param": None,
                                            "code": None}}, status=404)
    if k.delay:
        await asyncio.sleep(k.delay)
    chunk = {"id": f"chatcmpl-{k.name}", "object": "chat.completion.chunk",
             "created": int(time.time()), "model": body["model"]}
    if body.get("stream"):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in ("from ", k.name):
            await resp.write(b"data: " + json.dumps({**chunk, "choices": [
                {"index": 0, "delta": {"content": piece}, "finish_reason": None}]}).encode()
                + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp
    return web.json_response({
        "id": f"chatcmpl-{k.name}", "object": "chat.completion", "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"from {k.name}"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})


async def other(request: web.Request) -> web.Response:
    """Any other /v1/* path: 501 for those in not_here (llama.cpp's body for embeddings
    that are off), else a small JSON saying who served it."""
    k = request.app[KNOBS]
    k.seen.append(request.path)
    if request.path in k.not_here:
        return web.json_response({"error": {"code": 501, "message": "This server does not "
                                            "support embeddings. Start it with `--embeddings`",
                                            "type": "not_supported_error"}}, status=501)
    return web.json_response({"object": "test", "served_by": k.name, "path": request.path})


def make_app(name: str, models: list[str], cpu: float | None = None) -> web.Application:
    app = web.Application()
    app[KNOBS] = Knobs(name, models, cpu)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_route("*", "/v1/{tail:.*}", other)
    return app
