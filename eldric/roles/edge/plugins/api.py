"""The plugins admin API (admin key required, as the clients API):

    GET  /api/v1/plugins                  every plugin: manifest, state, counts, p50
    POST /api/v1/plugins/{id}/enable      start it (server side) and keep it enabled
    POST /api/v1/plugins/{id}/disable     stop it
    GET  /api/v1/plugins/{id}/valves      its valves, secrets masked, and their schema
    PUT  /api/v1/plugins/{id}/valves      new valves: checked (400 naming the field),
                                          stored, handed to the running child
    POST /api/v1/plugins/reload           read --plugins-dir again
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from eldric.auth import require_key
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, EldricError, NotFound
from eldric.http import read_body
from eldric.processes import refresh as processes_refresh
from eldric.roles.edge.handlers import NO_ADMIN
from eldric.roles.edge.plugins.host import Plugin
from eldric.roles.edge.plugins.valves import BadValves
from eldric.roles.edge.state import EDGE


def _admin(request: web.Request) -> None:
    require_key(request, request.app[EDGE].cfg.admin_key or NO_ADMIN, "admin key")


def _plugin(request: web.Request) -> Plugin:
    _admin(request)
    pid = request.match_info["id"]
    p = request.app[EDGE].plugins.table.get(pid)
    if p is None:
        raise NotFound(f"no plugin {pid!r} in the plugins directory", code="plugin_not_found")
    return p


async def list_plugins(request: web.Request) -> web.Response:
    _admin(request)
    plugins = request.app[EDGE].plugins
    return json_response({"directory": str(plugins.directory),
                          "plugins": [p.status() for p in plugins.table.values()],
                          "mcp_servers": [s.status() for s in plugins.mcp]})


async def _set(request: web.Request, on: bool) -> web.Response:
    p = _plugin(request)
    if on and p.error is not None:
        raise EldricError(f"plugin {p.id} cannot run: {p.error}", status=409,
                          code="plugin_invalid", param=p.id)
    p = await request.app[EDGE].plugins.set_enabled(p.id, on)
    return json_response(p.status())


async def enable(request: web.Request) -> web.Response:
    return await _set(request, True)


async def disable(request: web.Request) -> web.Response:
    return await _set(request, False)


def _no_valves(p: Plugin) -> EldricError:
    return EldricError(f"plugin {p.id} has no valves ({p.error or 'no schema'})",
                       status=409, code="plugin_invalid", param=p.id)


async def get_valves(request: web.Request) -> web.Response:
    p = _plugin(request)
    if p.valves is None:
        raise _no_valves(p)
    return json_response({"valves": p.valves.masked(), "schema": p.valves.schema})


async def put_valves(request: web.Request) -> web.Response:
    p = _plugin(request)
    if p.valves is None:
        raise _no_valves(p)
    try:
        new = msgspec.json.decode(await read_body(request))
    except msgspec.DecodeError:
        raise BadRequest("the body must be a JSON object of valves", param="valves") from None
    if isinstance(new, dict) and isinstance(new.get("valves"), dict) \
            and set(new) <= {"valves", "schema"}:
        new = new["valves"]  # what GET gave, sent back whole
    if not isinstance(new, dict):
        raise BadRequest("the body must be a JSON object of valves", param="valves")
    try:
        masked = await request.app[EDGE].plugins.set_valves(p.id, new)
    except BadValves as e:
        raise BadRequest(f"valves.{e.field}: {e}", param=e.field, code="invalid_valves") from None
    return json_response({"valves": masked})


async def reload(request: web.Request) -> web.Response:
    _admin(request)
    plugins = request.app[EDGE].plugins
    changed = await plugins.reload()
    return json_response({**changed, "plugins": [p.status() for p in plugins.table.values()]})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/plugins", list_plugins)
    r.add_post("/api/v1/plugins/reload", reload)
    r.add_post("/api/v1/plugins/{id}/enable", enable)
    r.add_post("/api/v1/plugins/{id}/disable", disable)
    r.add_get("/api/v1/plugins/{id}/valves", get_valves)
    r.add_put("/api/v1/plugins/{id}/valves", put_valves)
    # --processes: each process hosts its own plugins, so each makes the change (all four
    # say the whole of it: made twice, the same state)
    for route in ("/api/v1/plugins/reload", "/api/v1/plugins/{id}/enable",
                  "/api/v1/plugins/{id}/disable", "/api/v1/plugins/{id}/valves"):
        processes_refresh.replay(app, route)
