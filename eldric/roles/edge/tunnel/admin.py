"""GET /api/v1/tunnel/workers (admin key): every tunnel on this edge."""

from __future__ import annotations

from aiohttp import web

from eldric.auth import require_key
from eldric.bus.routes import json_response
from eldric.roles.edge.handlers import NO_ADMIN
from eldric.roles.edge.state import EDGE
from eldric.roles.edge.tunnel.registry import TUNNELS


async def workers(request: web.Request) -> web.Response:
    require_key(request, request.app[EDGE].cfg.admin_key or NO_ADMIN, "admin key")
    tunnels = request.app[TUNNELS]
    return json_response({"tunnels": [t.snapshot() for t in tunnels.by_id.values()]})
