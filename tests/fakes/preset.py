"""A fake of any OpenAI-compatible preset (eldric/backends/presets.py), built from its row.

The replies are tests/fakes/openai_server.py's (OpenAI's shapes: the model list, chat
whole and streamed with stream_options.include_usage, completions, embeddings); what
this adds is the preset's own surface, from the row: the API sits at the path of the
row's URL (Groq's /openai/v1, KServe's /openai/v1, Perplexity's root), its model list at
that path + the row's `models` (none at all when the row has none: a 404, as Perplexity
answers), and its key in the row's header (`auth`). A request with the key anywhere else,
or a key sent to a kind that takes none, is a 401 in OpenAI's error shape, and every
request is recorded (knobs.requests), so a test can assert the paths eldric called.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from eldric.backends.table import BackendDef
from tests.fakes.openai_server import KNOBS, Knobs, chat, completions, embeddings, models

# How each scheme carries the key (the row's `auth`; eldric/backends/table.py).
_HEADER = {"bearer": ("Authorization", "Bearer {}"), "x-api-key": ("x-api-key", "{}"),
           "api-key": ("api-key", "{}"), "token": ("Authorization", "Token {}")}


def root(row: BackendDef) -> str:
    """The path the preset's API lives under ("/openai/v1", "/v1", "" for Perplexity)."""
    return urlsplit(row.url or "http://x/v1").path.rstrip("/")


def _refused(message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error",
                                        "param": None, "code": "invalid_api_key"}}, status=401)


def make_app(row: BackendDef, *, key: str | None, model: str) -> web.Application:
    """The preset `row` serving `model`; `key`: the key it demands (None: it takes none,
    and any Authorization header sent is refused, so eldric must send none)."""
    if row.auth not in (*_HEADER, "none"):
        raise ValueError(f"{row.name}: no fake for auth {row.auth!r}")
    # a kind that takes no key, given one anyway (a proxy in front of it): a bearer token
    header, shape = _HEADER.get(row.auth, _HEADER["bearer"])

    @web.middleware
    async def check_key(request: web.Request, handler):  # type: ignore[no-untyped-def]
        knobs = request.app[KNOBS]
        if key is None:
            if "Authorization" in request.headers:
                knobs.requests.append({"path": request.path, "headers": dict(request.headers)})
                return _refused(f"{row.name} takes no key")
        elif request.headers.get(header) != shape.format(key):
            knobs.requests.append({"path": request.path, "headers": dict(request.headers)})
            return _refused("Incorrect API key provided.")
        return await handler(request)

    async def listed(request: web.Request) -> web.StreamResponse:
        request.app[KNOBS].requests.append({"path": request.path,
                                            "headers": dict(request.headers)})
        return await models(request)

    async def unknown(request: web.Request) -> web.Response:
        request.app[KNOBS].requests.append({"path": request.path,
                                            "headers": dict(request.headers)})
        return web.json_response({"error": {"message": f"no route {request.path}",
                                             "type": "invalid_request_error", "param": None,
                                             "code": "not_found"}}, status=404)

    app = web.Application(middlewares=[check_key])
    app[KNOBS] = knobs = Knobs()
    knobs.models = [model]
    base = root(row)
    if row.models is not None:
        app.router.add_get(base + row.models, listed)
    app.router.add_post(base + "/chat/completions", chat)
    app.router.add_post(base + "/completions", completions)
    app.router.add_post(base + "/embeddings", embeddings)
    app.router.add_route("*", "/{tail:.*}", unknown)
    return app
