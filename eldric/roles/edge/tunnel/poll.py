"""GET /api/v1/tunnel/{id}/poll: the worker's long-poll for its next request."""

from __future__ import annotations

from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import EldricError
from eldric.roles.edge.scopes import scoped
from eldric.roles.edge.state import EDGE
from eldric.roles.edge.tunnel.registry import TUNNELS
from eldric.wire.tunnel import Poll



async def poll(request: web.Request) -> web.StreamResponse:
    """200 with one request (the worker keeps one poll outstanding per free slot), 204
    once the long-poll time passed with none, 404 when the edge does not know the tunnel
    (connect again with the same id), 503 while the edge stops."""
    client = await scoped(request, request.app[EDGE], "register")
    tunnels = request.app[TUNNELS]
    tunnel = tunnels.owned(request.match_info["id"], client.name)
    if tunnels.stopping:
        raise EldricError("the edge is stopping: connect again in a moment", status=503,
                          code="edge_stopping", headers={"Retry-After": "1"})
    tunnel.touch()
    tunnel.polls[id(request)] = request
    try:
        pending = await tunnel.queue.get(tunnels.poll_ms / 1000)
    finally:
        tunnel.polls.pop(id(request), None)
        tunnel.touch()
    if pending is None:
        return web.Response(status=204)
    if request.transport is None or request.transport.is_closing():
        tunnel.queue.put_back(pending)  # this poll's worker is gone: another poll takes it
        return web.Response(status=204)
    pending.state = "sent"
    tunnel.in_flight[pending.id] = pending
    return json_response(Poll(requests=[pending.request]))
