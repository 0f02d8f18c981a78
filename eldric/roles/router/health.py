"""Active health checks of the router's workers: /health (status, load) and /v1/models."""

from __future__ import annotations

import asyncio

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.roles.router.pool import Worker
from eldric.roles.router.state import ROUTER
from eldric.wire.cluster import HealthHead
from eldric.wire.openai import UpstreamModelList

log = structlog.get_logger("eldric.router")

_health = msgspec.json.Decoder(HealthHead)
_models = msgspec.json.Decoder(UpstreamModelList)


async def check(app: web.Application, w: Worker) -> bool:
    rs = app[ROUTER]
    bus = app[keys.BUS]
    session = app[keys.SESSION]
    timeout = aiohttp.ClientTimeout(total=min(rs.cfg.health_check_interval_ms / 1000, 5.0),
                                    sock_connect=rs.timeouts.connect)
    try:
        async with session.get(w.url + "/health", timeout=timeout) as resp:
            raw = await resp.read()
            status = resp.status
        if status == 404:
            head = HealthHead()  # a plain OpenAI-compatible upstream: /v1/models decides
        else:
            if status >= 500:
                raise ValueError(f"/health answered HTTP {status}")
            try:
                head = _health.decode(raw) if raw.strip() else HealthHead()
            except (msgspec.DecodeError, msgspec.ValidationError):
                head = HealthHead()  # not eldric's format; the status code said healthy
            if head.status in ("unhealthy", "offline"):
                raise ValueError(f"/health says {head.status}")
        if head.load is not None:
            w.state.load = msgspec.structs.asdict(head.load)
            w.reported_max_concurrency = head.load.max_concurrency
        async with session.get(w.url + "/v1/models", timeout=timeout) as resp:
            raw = await resp.read()
            if resp.status == 200:
                w.state.models = [m.id for m in _models.decode(raw).data]
            elif status == 404:
                raise ValueError(f"/v1/models answered HTTP {resp.status}")
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError, msgspec.DecodeError,
            msgspec.ValidationError) as exc:
        bus.mark(w.state, False, f"health check: {type(exc).__name__}: {exc}".rstrip(": "))
        return False
    bus.mark(w.state, True)
    return True


async def check_all(app: web.Application) -> None:
    workers = list(app[ROUTER].pool.workers.values())
    if workers:
        await asyncio.gather(*(check(app, w) for w in workers))


async def health_loop(app: web.Application) -> None:
    rs = app[ROUTER]
    while True:
        await asyncio.sleep(rs.cfg.health_check_interval_ms / 1000)
        await check_all(app)
