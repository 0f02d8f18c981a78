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
        if keys.PLAN in app:
            return await _for_all(app, msgspec.to_builtins(body), "/health")
        return json_response(body, status_code(body.status))
    role = app[keys.ROLE].name
    status = app[keys.BUS].status(role)
    if keys.PLAN in app:
        return await _for_all(app, {"status": status, "role": role}, "/health")
    return json_response({"status": status, "role": role}, status_code(status))


async def _for_all(app: web.Application, body: dict, target: str) -> web.Response:
    """--processes: the primary's answer is the whole's (the worst status, and every
    process in `processes`); a child's is its own, with `process` saying which it is."""
    from eldric.processes import aggregate

    info, plan = app[keys.ROLE], app[keys.PLAN]
    active = info.active - 1  # not counting this /health request itself
    requests = int(sum(c.value for labels, c in app[keys.BUS].metrics.requests.items()
                       if labels[0] == info.name))
    if plan.child:
        body["process"] = aggregate.own_entry(plan.index, body["status"], requests, active)
        return json_response(body, status_code(body["status"]))
    answers = await aggregate.ask_children(
        [plan.sock(info.name, i) for i in range(1, plan.n)], target)
    body["processes"] = [aggregate.own_entry(0, body["status"], requests, active),
                         *(aggregate.process_entry(i, a) for i, a in enumerate(answers, 1))]
    body["status"] = aggregate.worst(p["status"] for p in body["processes"])
    return json_response(body, status_code(body["status"]))


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
    if keys.PLAN in app:
        return await _for_all(app, body, "/api/v1/health")
    return json_response(body, status_code(status))


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    body = app[keys.BUS].metrics.render()
    plan = app.get(keys.PLAN)
    if plan is not None and not plan.child:  # the primary: every process's, summed
        from eldric.processes import aggregate

        info = app[keys.ROLE]
        answers = await aggregate.ask_children(
            [plan.sock(info.name, i) for i in range(1, plan.n)], "/metrics")
        texts = [body.decode(), *(a[1].decode() for a in answers if a and a[0] == 200)]
        up = 1 + sum(1 for a in answers if a and a[0] == 200)
        # each child counted the primary's question as a request in flight: as with one
        # process, only this scrape itself counts
        asked = {("eldric_active_requests", (("role", info.name),)): 1.0 - up}
        body = aggregate.merge_metrics(texts, asked) + (
            "# HELP eldric_processes Processes serving this port that answered (--processes)\n"
            f"# TYPE eldric_processes gauge\neldric_processes {up}\n"
            "# HELP eldric_processes_configured Processes --processes asked for\n"
            f"# TYPE eldric_processes_configured gauge\neldric_processes_configured {plan.n}\n"
        ).encode()
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/api/v1/health", health_detail)
    app.router.add_get("/metrics", metrics)
