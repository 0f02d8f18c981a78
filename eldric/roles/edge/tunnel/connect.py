"""POST /api/v1/tunnel/connect and /api/v1/tunnel/{id}/disconnect: the worker's side
(key scope "register"), rate-limited as any call to the edge."""

from __future__ import annotations

from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import EldricError
from eldric.http import read_body
from eldric.roles.edge.scopes import admitted
from eldric.roles.edge.state import EDGE
from eldric.roles.edge.tunnel.registry import TUNNELS
from eldric.wire.head import decode_head
from eldric.wire.tunnel import Connect, Connected, tunnel_url


def edge_url(request: web.Request, tls: bool) -> str:
    """The edge as the worker reached it (what it and the routers call)."""
    return f"{'https' if tls else request.scheme}://{request.host}"


async def connect(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    client, headers = await admitted(request, es, "register")
    try:
        body = await read_body(request)
        hello = decode_head(body, Connect) if body.strip() else Connect()
        if hello.concurrency < 1:
            raise EldricError("concurrency must be at least 1", status=400,
                              code="invalid_request", param="concurrency")
        url = edge_url(request, es.tls)
        tunnels = request.app[TUNNELS]
        tunnel = tunnels.connect(client.name, hello.tunnel_id, hello.worker_id,
                                 hello.concurrency, url)
    except EldricError as exc:
        exc.headers = {**headers, **exc.headers}
        raise
    reply = Connected(tunnel_id=tunnel.id, poll_url=f"/api/v1/tunnel/{tunnel.id}/poll",
                      url=tunnel_url(url, tunnel.id), long_poll_ms=tunnels.poll_ms)
    resp = json_response(reply)
    resp.headers.update(headers)
    return resp


async def disconnect(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    client, headers = await admitted(request, es, "register")
    tunnels = request.app[TUNNELS]
    try:
        tunnel = tunnels.owned(request.match_info["id"], client.name)
    except EldricError as exc:
        exc.headers = {**headers, **exc.headers}
        raise
    tunnels.drop(tunnel, "was disconnected by its worker")
    resp = json_response({"tunnel_id": tunnel.id, "status": "disconnected"})
    resp.headers.update(headers)
    return resp
