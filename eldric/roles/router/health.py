"""Active health checks of the router's workers: /health (status, load) and /v1/models,
run by the role's Prober (eldric.bus.prober)."""

from __future__ import annotations

import functools
import time

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.bus.prober import HEALTHY, Prober, Verdict, on_bus, probe_timeout
from eldric.roles.router.pool import Worker
from eldric.roles.router.state import ROUTER, RouterState
from eldric.stream import UpstreamFailure
from eldric.wire.cluster import HealthHead
from eldric.wire.openai import UpstreamModelList

log = structlog.get_logger("eldric.router")

_health = msgspec.json.Decoder(HealthHead)
_models = msgspec.json.Decoder(UpstreamModelList)


async def check(app: web.Application, w: Worker, keep_suspicion: bool = False) -> Verdict:
    """/health (status, load, paths) then /v1/models, each within the probe timeout. A
    passing periodic check ends a worker's suspicion (passive_mark); the confirming one
    does not: its /health being fine says nothing about the failing requests."""
    rs = app[ROUTER]
    session = app[keys.SESSION]
    timeout = aiohttp.ClientTimeout(total=probe_timeout(_interval(rs)),
                                    sock_connect=rs.timeouts.connect)
    base, headers = w.target.base_url, w.target.headers
    async with session.get(base + "/health", timeout=timeout, headers=headers) as resp:
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
    w.paths = head.paths
    async with session.get(base + "/v1/models", timeout=timeout, headers=headers) as resp:
        raw = await resp.read()
        if resp.status == 200:
            w.state.models = [m.id for m in _models.decode(raw).data]
        elif status == 404:
            raise ValueError(f"/v1/models answered HTTP {resp.status}")
    if not keep_suspicion:
        w.suspect_until = 0.0
    return HEALTHY


def _interval(rs: RouterState) -> float:
    return rs.cfg.health_check_interval_ms / 1000


def prober(app: web.Application) -> Prober[Worker]:
    """Every worker, every health interval; a check is two requests, each within
    probe_timeout(interval), so the whole check may take twice that."""
    rs = app[ROUTER]
    return Prober("router-health", functools.partial(check, app),
                  targets=lambda: list(rs.pool.workers.values()), interval=_interval(rs),
                  timeout=2 * probe_timeout(_interval(rs)),
                  mark=on_bus(app[keys.BUS], lambda w: w.state), says="health check: ")


def passive_mark(app: web.Application, w: Worker, exc: UpstreamFailure) -> None:
    """What a failed request says about its worker, beyond what the failover did (a
    refused or unreachable worker is out of rotation at once). A 5xx, a timeout or a
    broken reply may be the request's own doing (a prompt too long for the first-byte
    timeout, an input the backend chokes on), and a client must never be able to take a
    healthy worker out: after max_failures in a row the worker is ranked last for one
    health interval and checked at once; only a failing check takes it out. A 4xx, a
    429 or a "not here" (501/405) count for nothing."""
    rs = app[ROUTER]
    if exc.kind in ("connect", "unsupported") or (exc.kind == "status" and exc.status < 500):
        return
    if w.state.consecutive_failures < rs.cfg.max_failures:
        return
    w.suspect_until = time.monotonic() + _interval(rs)
    if app[keys.PROBER].poke(w, functools.partial(check, app, keep_suspicion=True)):
        log.warning("worker_suspect", worker=w.id, failures=w.state.consecutive_failures,
                    error=exc.message)


def _checked_routable(app: web.Application) -> list[Worker]:
    # A worker synced from the controller counts as healthy until its first check.
    return [w for w in app[ROUTER].pool.routable() if w.state.last_check is not None]


async def waiting_for(app: web.Application) -> str | None:
    """Ready once a worker passed a health check (checking again now if none has)."""
    if _checked_routable(app):
        return None
    await app[keys.PROBER].round()
    if _checked_routable(app):
        return None
    workers = list(app[ROUTER].pool.workers.values())
    if not workers:
        return "a worker (none given with --workers, none registered at the controller yet)"
    return "a healthy worker (" + "; ".join(
        f"{w.url}: {w.state.last_error or 'not checked yet'}" for w in workers) + ")"
