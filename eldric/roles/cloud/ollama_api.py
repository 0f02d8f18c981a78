"""The cloud worker's Ollama model endpoints: GET /api/tags, /api/version, /api/ps
(eldric.ollama_api) and POST /api/show, answered from its backends' model lists (what a
provider's model is beyond its name is not known here). /api/chat, /api/generate and
/api/embed are eldric.wire.translated paths (handlers.add_routes)."""

from __future__ import annotations

from aiohttp import web

from eldric import keys
from eldric.errors import ModelNotFound
from eldric.http import read_body
from eldric.ollama_api import add_listing, answer
from eldric.roles.cloud.state import CLOUD
from eldric.wire import ollama


async def _models(request: web.Request) -> list[str]:
    return list(dict.fromkeys(m for m, _ in request.app[CLOUD].models()))


async def show(request: web.Request) -> web.Response:
    model = ollama.show_model(await read_body(request))
    request[keys.HOP].model = model
    if not any(model in (m, f"{b.name}/{m}") for m, b in request.app[CLOUD].models()):
        raise ModelNotFound(f"model '{model}' not found", param="model")
    return answer(ollama.show())


def add_routes(app: web.Application) -> None:
    add_listing(app, _models)
    app.router.add_post(ollama.SHOW, show)
