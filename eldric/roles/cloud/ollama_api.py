"""The cloud worker's Ollama model endpoints: GET /api/tags, /api/version, /api/ps and
POST /api/show, answered from its backends' model lists (eldric.wire.ollama's bodies;
what a provider's model is beyond its name is not known here). /api/chat, /api/generate
and /api/embed are eldric.wire.translated paths (handlers.add_routes)."""

from __future__ import annotations

from aiohttp import web

from eldric import keys
from eldric.errors import ModelNotFound
from eldric.http import read_body
from eldric.roles.cloud.state import CLOUD
from eldric.wire import ollama


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


async def tags(request: web.Request) -> web.Response:
    return _json(ollama.tags(dict.fromkeys(m for m, _ in request.app[CLOUD].models())))


async def version(request: web.Request) -> web.Response:
    return _json(ollama.version())


async def ps(request: web.Request) -> web.Response:
    return _json(ollama.ps())


async def show(request: web.Request) -> web.Response:
    model = ollama.show_model(await read_body(request))
    request[keys.HOP].model = model
    if not any(model in (m, f"{b.name}/{m}") for m, b in request.app[CLOUD].models()):
        raise ModelNotFound(f"model '{model}' not found", param="model")
    return _json(ollama.show())


def add_routes(app: web.Application) -> None:
    for path, handler in zip(ollama.LISTING, (tags, version, ps), strict=True):
        app.router.add_get(path, handler)
    app.router.add_post(ollama.SHOW, show)
