"""A stand-in for the edge's tunnel room (eldric.wire.tunnel), for testing the worker's
side alone: connect (key "reg-key" only; anything else 403 scope_required), long-poll,
the raw forward (.../forward/{path}), the streamed response upload, disconnect.

`forget()` plays an edge restart (polls get 404 tunnel_not_found until the worker
connects again); `refuse_uploads` answers every upload 409 tunnel_request_gone at once
(a caller that left), `cut_uploads_after` cuts each upload's connection after that
many chunks (an edge that vanished mid-upload), `taken` ids are another client's (connect
409 tunnel_id_taken), `stopping` answers polls 503 edge_stopping; `seen` keeps each forward's Authorization header and `uploads`
each upload's outcome, for the tests to assert on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets

from aiohttp import web

from eldric.wire.tunnel import HEADERS_HEADER, STATUS_HEADER, tunnel_url

REGISTER_KEY = "reg-key"


def _error(status: int, code: str) -> web.Response:
    return web.json_response({"error": {"message": code, "type": "error", "param": None,
                                        "code": code}}, status=status)


class Pending:
    def __init__(self) -> None:
        self.head: asyncio.Future = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue = asyncio.Queue()
        self.gone = False


class State:
    def __init__(self, poll_s: float = 2.0) -> None:
        self.poll_s = poll_s
        self.queues: dict[str, asyncio.Queue] = {}
        self.pending: dict[str, Pending] = {}
        self.connects: list[dict] = []
        self.refused_connects = 0
        self.disconnects: list[str] = []
        self.seen: list[str | None] = []  # Authorization of each forward
        self.uploads: list[tuple[str, int]] = []  # (request id, what the upload got)
        self.refuse_uploads = False
        self.cut_uploads_after: int | None = None  # chunks, then the connection is cut
        self.taken: set[str] = set()  # ids another client holds: connect 409
        self.stopping = False  # polls answer 503 edge_stopping, Retry-After
        self.stopped_polls = 0
        self.url = ""

    def forget(self) -> None:
        self.queues.clear()


STATE = web.AppKey("tunnel_state", State)


async def connect(request: web.Request) -> web.Response:
    st = request.app[STATE]
    if request.headers.get("Authorization") != f"Bearer {REGISTER_KEY}":
        st.refused_connects += 1
        return _error(403, "scope_required")
    body = await request.json()
    st.connects.append(body)
    if body.get("tunnel_id") in st.taken:
        return _error(409, "tunnel_id_taken")
    tid = body.get("tunnel_id") or f"tun-{secrets.token_hex(4)}"
    st.queues.setdefault(tid, asyncio.Queue())
    return web.json_response({"tunnel_id": tid, "poll_url": f"/api/v1/tunnel/{tid}/poll",
                              "url": tunnel_url(st.url, tid),
                              "long_poll_ms": int(st.poll_s * 1000)})


async def poll(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    q = st.queues.get(request.match_info["id"])
    if q is None:
        return _error(404, "tunnel_not_found")
    if st.stopping:
        st.stopped_polls += 1
        resp = _error(503, "edge_stopping")
        resp.headers["Retry-After"] = "0.2"
        return resp
    try:
        item = await asyncio.wait_for(q.get(), st.poll_s)
    except TimeoutError:
        return web.Response(status=204)
    return web.json_response({"requests": [item]})


async def forward(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    st.seen.append(request.headers.get("Authorization"))
    q = st.queues.get(request.match_info["id"])
    if q is None:
        return _error(503, "tunnel_unavailable")
    rid = secrets.token_hex(6)
    p = st.pending[rid] = Pending()
    path = "/" + request.match_info["path"] + (f"?{request.query_string}"
                                               if request.query_string else "")
    await q.put({"id": rid, "method": request.method, "path": path,
                 "headers": [[k, v] for k, v in request.headers.items()],
                 "body": base64.b64encode(await request.read()).decode()})
    try:
        status, headers = await p.head
        resp = web.StreamResponse(status=status)
        for k, v in headers:
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                resp.headers.add(k, v)
        await resp.prepare(request)
        while (chunk := await p.chunks.get()) is not None:
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        p.gone = True


async def response(request: web.Request) -> web.Response:
    st = request.app[STATE]
    rid = request.match_info["req_id"]
    p = st.pending.get(rid)
    if p is None or p.gone or st.refuse_uploads:
        st.uploads.append((rid, 409))
        return _error(409, "tunnel_request_gone")
    headers = json.loads(request.headers[HEADERS_HEADER])
    p.head.set_result((int(request.headers[STATUS_HEADER]), headers))
    try:
        n = 0
        async for chunk in request.content.iter_any():
            n += 1
            if st.cut_uploads_after is not None and n > st.cut_uploads_after:
                st.uploads.append((rid, -1))
                request.transport.close()  # the edge vanished mid-upload
                raise ConnectionResetError("cut")
            if p.gone:
                st.uploads.append((rid, 409))
                return _error(409, "tunnel_request_gone")
            await p.chunks.put(chunk)
    finally:
        await p.chunks.put(None)
    st.uploads.append((rid, 200))
    return web.json_response({"status": "ok"})


async def disconnect(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.disconnects.append(request.match_info["id"])
    st.queues.pop(request.match_info["id"], None)
    return web.json_response({"status": "disconnected"})


def make_app(poll_s: float = 2.0) -> web.Application:
    app = web.Application()
    app[STATE] = State(poll_s)
    r = app.router
    r.add_post("/api/v1/tunnel/connect", connect)
    r.add_get("/api/v1/tunnel/{id}/poll", poll)
    r.add_route("*", "/api/v1/tunnel/{id}/forward/{path:.*}", forward)
    r.add_post("/api/v1/tunnel/{id}/response/{req_id}", response)
    r.add_post("/api/v1/tunnel/{id}/disconnect", disconnect)
    return app
