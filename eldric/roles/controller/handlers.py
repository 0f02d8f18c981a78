"""The controller's HTTP API and dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import get_args
from urllib.parse import unquote

import msgspec
from aiohttp import web

from eldric.auth import require_key
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, EldricError, NotFound
from eldric.http import read_body
from eldric.roles.controller.state import CONTROLLER
from eldric.wire.cluster import (EDGE_CLIENT_HEADER, Heartbeat, RouterSettings, Status, WorkerInfo, WorkerType,
                                 decode_strategy_body)
from eldric.wire.head import decode_head
from eldric.wire.tunnel import forward_base

STATIC = Path(__file__).parent / "static"
# The longest a GET /api/v1/workers?since=… may be held: under the idle timeouts of the
# proxies people put in between (60 s is common).
MAX_WAIT_MS = 55_000
_STATUSES = get_args(Status)
_TYPES = get_args(WorkerType)


def _owned(request: web.Request, wid: str | None) -> str | None:
    """The edge client a relayed call is for (None: not through an edge); 403 when the
    worker it names exists and another client (or the operator, directly) contributed
    it: a key that may register workers must not beat, stop or take over someone
    else's."""
    raw = request.headers.get(EDGE_CLIENT_HEADER)
    if raw is None:
        return None
    caller = unquote(raw)
    record = request.app[CONTROLLER].registry.workers.get(wid) if wid else None
    if record is not None and record.contributed_by != caller:
        raise EldricError(f"worker {wid} was contributed by another client",
                          status=403, code="worker_forbidden")
    return caller


async def register(request: web.Request) -> web.Response:
    cs = request.app[CONTROLLER]
    require_key(request, cs.cfg.cluster_key, "cluster key")
    info = decode_head(await read_body(request), WorkerInfo)
    if (caller := _owned(request, info.id)) is not None:
        info.contributed_by = caller
    if not info.url.startswith(("http://", "https://")):
        try:  # a worker behind NAT: reached through its edge (eldric.wire.tunnel)
            forward_base(info.url)
        except ValueError:
            raise BadRequest("url must be an http://, https:// or tunnel:// URL",
                             param="url") from None
    record = await cs.registry.register(info)
    return json_response({"id": record.id, "status": "registered"}, status=200)


async def heartbeat(request: web.Request) -> web.Response:
    cs = request.app[CONTROLLER]
    require_key(request, cs.cfg.cluster_key, "cluster key")
    beat = decode_head(await read_body(request), Heartbeat)
    wid = request.match_info["id"]
    _owned(request, wid)
    if cs.registry.heartbeat(wid, beat) is None:
        raise NotFound(f"unknown worker {wid}; register again", code="worker_not_found")
    return json_response({"status": "ok"})


async def deregister(request: web.Request) -> web.Response:
    """POST /api/v1/workers/{id}/deregister: a member stopping cleanly is offline at once."""
    cs = request.app[CONTROLLER]
    require_key(request, cs.cfg.cluster_key, "cluster key")
    wid = request.match_info["id"]
    _owned(request, wid)
    if await cs.registry.deregister(wid) is None:
        raise NotFound(f"unknown worker {wid}", code="worker_not_found")
    return json_response({"id": wid, "status": "offline"})


def _wait(request: web.Request) -> tuple[str, float] | None:
    """?since=VERSION&wait=MS: hold the reply until the registry moves on from VERSION."""
    q = request.query
    since = q.get("since")
    if since is None:
        return None
    text = q.get("wait", "0")
    try:
        wait = int(text)
    except ValueError:
        wait = -1
    if not 0 <= wait <= MAX_WAIT_MS:
        raise BadRequest(f"wait must be whole milliseconds from 0 to {MAX_WAIT_MS}",
                         param="wait")
    return since, wait / 1000


def _filters(request: web.Request) -> dict:
    q = request.query
    out = {"type": q.get("type"), "status": q.get("status"), "model": q.get("model")}
    if out["type"] is not None and out["type"] not in _TYPES:
        raise BadRequest(f"type must be one of {', '.join(_TYPES)}", param="type")
    if out["status"] is not None and out["status"] not in _STATUSES:
        raise BadRequest(f"status must be one of {', '.join(_STATUSES)}", param="status")
    return out


async def list_workers(request: web.Request) -> web.Response:
    cs = request.app[CONTROLLER]
    filters = _filters(request)
    wait = _wait(request)
    if wait is not None:
        await cs.registry.wait_change(*wait)
    return json_response({"workers": cs.registry.select(**filters),
                          "router_config": cs.registry.router,
                          "version": cs.registry.version})


async def get_worker(request: web.Request) -> web.Response:
    record = request.app[CONTROLLER].registry.workers.get(request.match_info["id"])
    if record is None:
        raise NotFound(f"unknown worker {request.match_info['id']}", code="worker_not_found")
    return json_response(record)


async def delete_worker(request: web.Request) -> web.Response:
    cs = request.app[CONTROLLER]
    require_key(request, cs.cfg.admin_key, "admin key")
    if not await cs.registry.delete(request.match_info["id"]):
        raise NotFound(f"unknown worker {request.match_info['id']}", code="worker_not_found")
    return json_response({"deleted": request.match_info["id"]})


class _Discover(msgspec.Struct, forbid_unknown_fields=True):
    worker_type: str | None = None
    model: str | None = None


async def discover(request: web.Request) -> web.Response:
    """The live workers of a type and/or serving a model, for workers looking for peers."""
    cs = request.app[CONTROLLER]
    raw = await read_body(request)
    want = decode_head(raw, _Discover) if raw.strip() else _Discover()
    found = [r for r in cs.registry.select(type=want.worker_type, model=want.model)
             if r.status != "offline"]
    return json_response({"workers": found})


async def models(request: web.Request) -> web.Response:
    return json_response({"models": request.app[CONTROLLER].registry.models()})


async def get_router_config(request: web.Request) -> web.Response:
    return json_response(request.app[CONTROLLER].registry.router)


async def set_router_config(request: web.Request) -> web.Response:
    cs = request.app[CONTROLLER]
    require_key(request, cs.cfg.admin_key, "admin key")
    settings = decode_strategy_body(await read_body(request), RouterSettings)
    await cs.registry.set_router(settings)
    return json_response(settings)


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "dashboard.html")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/workers/register", register)
    r.add_post("/api/v1/workers/discover", discover)
    r.add_post("/api/v1/workers/{id}/heartbeat", heartbeat)
    r.add_post("/api/v1/workers/{id}/deregister", deregister)
    r.add_get("/api/v1/workers", list_workers)
    r.add_get("/api/v1/workers/{id}", get_worker)
    r.add_delete("/api/v1/workers/{id}", delete_worker)
    r.add_get("/api/v1/models", models)
    r.add_get("/api/v1/router/config", get_router_config)
    r.add_post("/api/v1/router/config", set_router_config)
    r.add_get("/dashboard", dashboard)
    r.add_static("/static/", STATIC)
