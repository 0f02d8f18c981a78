"""A fake controller: the register/heartbeat half of the controller's API.

POST /api/v1/workers/register {WorkerInfo} -> {"id": ...} (assigns a wrk- id when absent);
POST /api/v1/workers/{id}/heartbeat -> 200, or 404 for an id it does not know (so the
worker registers again); 401 when a cluster key is set and not presented.
"""

from __future__ import annotations

import itertools
import json

from aiohttp import web


class State:
    def __init__(self, cluster_key: str | None = None) -> None:
        self.cluster_key = cluster_key
        self.workers: dict[str, dict] = {}
        self.registrations: list[dict] = []
        self.refused = 0  # register calls turned away for a bad cluster key
        self.heartbeats: list[tuple[str, dict]] = []
        self.ids = itertools.count(1)
        self.router_config: dict = {}
        self.list_calls = 0


STATE = web.AppKey("state", State)


def _authorised(request: web.Request) -> bool:
    key = request.app[STATE].cluster_key
    if key is None:
        return True
    return (request.headers.get("Authorization") == f"Bearer {key}"
            or request.headers.get("X-API-Key") == key)


async def register(request: web.Request) -> web.Response:
    st = request.app[STATE]
    if not _authorised(request):
        st.refused += 1
        return web.json_response({"error": {"message": "bad cluster key",
                                            "type": "authentication_error", "param": None,
                                            "code": "invalid_api_key"}}, status=401)
    info = json.loads(await request.read())
    wid = info.get("id") or f"wrk-assigned{next(st.ids)}"
    info["id"] = wid
    st.workers[wid] = info
    st.registrations.append(info)
    return web.json_response({"id": wid, "status": "registered"})


async def heartbeat(request: web.Request) -> web.Response:
    st = request.app[STATE]
    if not _authorised(request):
        return web.json_response({"error": {"message": "bad cluster key"}}, status=401)
    wid = request.match_info["id"]
    if wid not in st.workers:
        return web.json_response({"error": {"message": f"unknown worker {wid}",
                                            "type": "not_found_error", "param": None,
                                            "code": "worker_not_found"}}, status=404)
    st.heartbeats.append((wid, json.loads(await request.read())))
    return web.json_response({"status": "ok"})


async def list_workers(request: web.Request) -> web.Response:
    """GET /api/v1/workers: {"workers": [WorkerInfo + status + last_heartbeat], "router_config"}"""
    st = request.app[STATE]
    st.list_calls += 1
    if not _authorised(request):
        return web.json_response({"error": {"message": "bad cluster key"}}, status=401)
    workers = [{"status": "healthy", "last_heartbeat": 1.0, **w} for w in st.workers.values()]
    return web.json_response({"workers": workers, "router_config": st.router_config})


def make_app(cluster_key: str | None = None) -> web.Application:
    app = web.Application()
    app[STATE] = State(cluster_key)
    app.router.add_get("/api/v1/workers", list_workers)
    app.router.add_post("/api/v1/workers/register", register)
    app.router.add_post("/api/v1/workers/{id}/heartbeat", heartbeat)
    return app
