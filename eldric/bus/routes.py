"""/health, /api/v1/health and /metrics, rendered from the bus for every role."""

from __future__ import annotations

import time

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from eldric import __version__, keys

_enc = msgspec.json.Encoder()


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=_enc.encode(data), status=status, content_type="application/json")


def status_code(status: str) -> int:
    return 503 if status == "unhealthy" else 200


async def health(request: web.Request) -> web.Response:
    app = request.app
    custom = app.get(keys.HEALTH)
    if custom is not None:
        body = custom(app)
        return json_response(body, status_code(body.status))
    role = app[keys.ROLE].name
    status = app[keys.BUS].status(role)
    return json_response({"status": status, "role": role}, status_code(status))


async def health_detail(request: web.Request) -> web.Response:
    app = request.app
    bus = app[keys.BUS]
    info = app[keys.ROLE]
    custom = app.get(keys.HEALTH)
    status = custom(app).status if custom is not None else bus.status(info.name)
    ups = bus.of_role(info.name)
    healthy = sum(1 for u in ups if u.healthy)
    body = {
        "status": status,
        "role": info.name,
        "roles": bus.roles,
        "version": __version__,
        "advertise_url": info.advertise_url,
        "uptime_seconds": round(time.time() - info.started, 3),
        "upstream_counts": {"healthy": healthy, "unhealthy": len(ups) - healthy},
        "upstreams": [u.snapshot() for u in ups],
    }
    return json_response(body, status_code(status))


async def metrics(request: web.Request) -> web.Response:
    body = request.app[keys.BUS].metrics.render()
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/api/v1/health", health_detail)
    app.router.add_get("/metrics", metrics)
