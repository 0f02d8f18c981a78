"""The NAT tunnel's edge side (issue 18; docs/tunnel.md): a worker that can only connect
out long-polls the edge for requests and streams its replies back up, and a router calls
it at the edge (eldric.wire.tunnel is the wire).

- registry.py: the tunnels (who holds each, its queue, what it runs), silence, drops
- queue.py: the queue a poll pops; chunks.py: the bounded reply relay
- upstream.py: a tunnel as the forwarding core's upstream
- connect.py, poll.py, forward.py, response.py, admin.py: the endpoints
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from eldric import keys
from eldric.roles.edge.config import EdgeConfig
from eldric.roles.edge.tunnel import admin, connect, forward, metrics, poll, response
from eldric.roles.edge.tunnel.registry import TUNNELS, Tunnels


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    tunnels = app[TUNNELS]
    reaper = asyncio.create_task(tunnels.reap())
    stopping = asyncio.create_task(app[keys.STOPPING].wait())
    stopping.add_done_callback(lambda _: tunnels.stop())
    yield
    for task in (reaper, stopping):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def install(app: web.Application, cfg: EdgeConfig) -> None:
    bus = app[keys.BUS]
    tunnels = app[TUNNELS] = Tunnels(bus, cfg.tunnel.poll_ms, cfg.tunnel.max_queued)
    metrics.register(bus.metrics.registry, tunnels)
    app.cleanup_ctx.append(_lifecycle)
    r = app.router
    r.add_post("/api/v1/tunnel/connect", connect.connect)
    r.add_get("/api/v1/tunnel/workers", admin.workers)
    r.add_get("/api/v1/tunnel/{id}/poll", poll.poll)
    r.add_post("/api/v1/tunnel/{id}/response/{req_id}", response.response)
    r.add_post("/api/v1/tunnel/{id}/disconnect", connect.disconnect)
    r.add_post("/api/v1/tunnel/{id}/forward", forward.envelope)
    r.add_route("*", "/api/v1/tunnel/{id}/forward/{tail:.*}", forward.raw)
