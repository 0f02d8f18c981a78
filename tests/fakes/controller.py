"""A fake controller: the register/heartbeat half of the controller's API.

POST /api/v1/workers/register {WorkerInfo} -> {"id": ...} (assigns a wrk- id when absent);
POST /api/v1/workers/{id}/heartbeat -> 200, or 404 for an id it does not know (so the
worker registers again); POST /api/v1/workers/{id}/deregister -> 200 (recorded; held for
`deregister_delay` seconds, to play a controller that stopped answering); 401 when a
cluster key is set and not presented. `register_replies`: canned replies (status, body,
content type) the next register calls get instead, in order, to play a misconfigured or
failing controller.
"""

from __future__ import annotations

import asyncio
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
        self.deregistrations: list[str] = []
        self.deregister_delay = 0.0
        self.register_replies: list[tuple[int, bytes, str]] = []
        self.version: str | None = None  # None: a controller that cannot long-poll


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
    if st.register_replies:
        status, body, ctype = st.register_replies.pop(0)
        return web.Response(status=status, body=body, content_type=ctype)
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


async def deregister(request: web.Request) -> web.Response:
    st = request.app[STATE]
    if not _authorised(request):
        return web.json_response({"error": {"message": "bad cluster key"}}, status=401)
    wid = request.match_info["id"]
    st.deregistrations.append(wid)
    await asyncio.sleep(st.deregister_delay)
    return web.json_response({"id": wid, "status": "offline"})


async def list_workers(request: web.Request) -> web.Response:
    """GET /api/v1/workers: {"workers": [WorkerInfo + status + last_heartbeat], "router_config"}"""
    st = request.app[STATE]
    st.list_calls += 1
    if not _authorised(request):
        return web.json_response({"error": {"message": "bad cluster key"}}, status=401)
    workers = [{"status": "healthy", "last_heartbeat": 1.0, **w} for w in st.workers.values()]
    body = {"workers": workers, "router_config": st.router_config}
    if st.version is not None:  # a version, but ?since=&wait= ignored: answered at once
        body["version"] = st.version
    return web.json_response(body)


def make_app(cluster_key: str | None = None) -> web.Application:
    app = web.Application()
    app[STATE] = State(cluster_key)
    app.router.add_get("/api/v1/workers", list_workers)
    app.router.add_post("/api/v1/workers/register", register)
    app.router.add_post("/api/v1/workers/{id}/heartbeat", heartbeat)
    app.router.add_post("/api/v1/workers/{id}/deregister", deregister)
    return app
