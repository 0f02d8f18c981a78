"""The router's Ollama model endpoints: GET /api/tags from the cluster's model list,
/api/version and /api/ps answered here, POST /api/show routed by its model to a worker
(which relays it to its Ollama or answers it). The chat, generate and embed paths are
routed with the other eldric.wire.translated paths (handlers.add_routes). Exact paths
only: the control plane's /api/v1/* stays the router's own."""

from __future__ import annotations

from aiohttp import web

from eldric.roles.router.handlers import passthrough
from eldric.roles.router.state import ROUTER
from eldric.serve.server import fast_post
from eldric.wire import ollama


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


async def tags(request: web.Request) -> web.Response:
    return _json(ollama.tags(request.app[ROUTER].model_ids()))


async def version(request: web.Request) -> web.Response:
    return _json(ollama.version())


async def ps(request: web.Request) -> web.Response:
    return _json(ollama.ps())


def add_routes(app: web.Application) -> None:
    for path, handler in zip(ollama.LISTING, (tags, version, ps), strict=True):
        app.router.add_get(path, handler)
    fast_post(app, ollama.SHOW, passthrough)
