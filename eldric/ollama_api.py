"""Ollama's model endpoints as every worker-like role and the router answer them: GET
/api/tags from the role's own model list, /api/version and /api/ps the same everywhere
(eldric.wire.ollama's bodies). POST /api/show is each role's own (routed or answered)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from eldric.wire import ollama


def answer(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


async def version(request: web.Request) -> web.Response:
    return answer(ollama.version())


async def ps(request: web.Request) -> web.Response:
    return answer(ollama.ps())


def add_listing(app: web.Application,
                models: Callable[[web.Request], Awaitable[Iterable[str]]]) -> None:
    """GET /api/tags (of `models(request)`), /api/version and /api/ps."""
    async def tags(request: web.Request) -> web.Response:
        return answer(ollama.tags(await models(request)))

    for path, handler in zip(ollama.LISTING, (tags, version, ps), strict=True):
        app.router.add_get(path, handler)
