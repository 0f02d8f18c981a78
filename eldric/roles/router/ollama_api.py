"""The router's Ollama model endpoints: GET /api/tags from the cluster's model list,
/api/version and /api/ps answered here (eldric.ollama_api), POST /api/show routed by its
model to a worker (which relays it to its Ollama or answers it). The chat, generate and
embed paths are routed with the other eldric.wire.translated paths (handlers.add_routes).
Exact paths only: the control plane's /api/v1/* stays the router's own."""

from __future__ import annotations

from aiohttp import web

from eldric.ollama_api import add_listing
from eldric.roles.router.handlers import passthrough
from eldric.roles.router.state import ROUTER
from eldric.serve.server import fast_post
from eldric.wire import ollama


async def _models(request: web.Request) -> list[str]:
    return request.app[ROUTER].model_ids()


def add_routes(app: web.Application) -> None:
    add_listing(app, _models)
    fast_post(app, ollama.SHOW, passthrough)
