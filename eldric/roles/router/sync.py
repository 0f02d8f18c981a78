"""Keep the worker list (and routing settings) in step with the controller.

The router follows the registry's changes: it asks `GET /api/v1/workers?since=VERSION&
wait=MS`, which the controller holds until its registry changes (a worker registered,
deleted, offline or back, its models or status changed, the router settings) or the wait
ends; so a new worker is routable a moment after it registers. A controller whose reply
carries no version cannot long-poll: then the list is fetched every --sync-interval.
While the controller is unreachable the router keeps routing on the last list it had.
"""

from __future__ import annotations

import asyncio
import random

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.roles.router.state import ROUTER
from eldric.wire.cluster import INFERENCE_TYPES, WorkerListing

log = structlog.get_logger("eldric.router")

_decoder = msgspec.json.Decoder(WorkerListing)

# How long the controller may hold one request (under common proxy idle timeouts).
LONG_POLL_MS = 25_000
# A held request that came back early with nothing new (the controller is stopping, or
# ignores the wait): the next one waits this long, at most, so it is never a busy loop.
EARLY_PAUSE_S = 2.0
# However fast the registry changes, a router asks at most this often.
MIN_GAP_S = 0.2

SYNC_ERRORS = (aiohttp.ClientError, OSError, TimeoutError, ValueError, msgspec.DecodeError,
               msgspec.ValidationError)


async def fetch(app: web.Application, since: str | None = None) -> WorkerListing:
    """The controller's worker list; with `since`, held until the registry moves on."""
    rs = app[ROUTER]
    headers = {"Authorization": f"Bearer {rs.cfg.api_key}"} if rs.cfg.api_key else None
    url = rs.cfg.controller_url.rstrip("/") + "/api/v1/workers"  # type: ignore[union-attr]
    params = {"since": since, "wait": str(LONG_POLL_MS)} if since is not None else None
    total = 10 + (LONG_POLL_MS / 1000 if since is not None else 0)
    async with app[keys.SESSION].get(url, params=params, headers=headers,
                                     timeout=aiohttp.ClientTimeout(
                                         total=total, sock_connect=rs.timeouts.connect)) as resp:
        raw = await resp.read()
        if resp.status != 200:
            raise ValueError(f"controller answered HTTP {resp.status}")
    return _decoder.decode(raw)


def apply(app: web.Application, listing: WorkerListing) -> None:
    rs = app[ROUTER]
    pool = rs.pool
    static_by_url = {w.url: w for w in pool.workers.values() if w.static}
    seen: set[str] = set()
    for rec in listing.workers:
        # Routers (and data, media, … workers) register too; only these serve inference.
        if rec.status == "offline" or rec.worker_type not in INFERENCE_TYPES or not rec.id:
            continue
        url = rec.url.rstrip("/")
        if url in static_by_url:  # the same worker, also configured here
            seen.add(static_by_url[url].id)
            continue
        new = rec.id not in pool.workers
        try:
            w = pool.add(rec.id, url, tags=rec.tags, worker_type=rec.worker_type,
                         from_controller=True)
        except ValueError as exc:  # a tunnel:// URL naming no tunnel: not routable
            if new:
                log.warning("worker_url_unusable", worker=rec.id, url=url, error=str(exc))
            continue
        seen.add(rec.id)
        if new:
            # Route on what it registered with until our own check has looked at it.
            w.state.models = list(rec.models)
            w.state.load = msgspec.structs.asdict(rec.load)
            w.reported_max_concurrency = rec.load.max_concurrency
            w.paths = rec.paths
            log.info("worker_synced", worker=rec.id, url=url, models=rec.models)
            app[keys.PROBER].poke(w)
        elif rec.models != w.registered_models:
            app[keys.PROBER].poke(w)  # its models changed: our own check looks now
        w.registered_models = list(rec.models)
    for w in [w for w in pool.workers.values() if w.from_controller and not w.static]:
        if w.id not in seen:
            log.info("worker_unsynced", worker=w.id, url=w.url)
            pool.remove(w.id)

    settings = listing.router_config
    wanted = settings.known_strategy
    if settings.strategy and wanted is None:
        log.warning("controller_strategy_unknown", strategy=settings.strategy)
    elif wanted and not rs.strategy_fixed:
        fallback = settings.known_fallback
        if settings.fallback_strategy and fallback is None:
            log.warning("controller_strategy_unknown", fallback_strategy=settings.fallback_strategy)
        now = rs.strategy.name if rs.strategy else None
        if now != wanted or (wanted == "cache_aware" and rs.cache is not None and
                             rs.cache.fallback.name != (fallback or
                                                        rs.cfg.cache_aware.fallback_strategy)):
            rs.set_strategy(wanted, "controller", fallback)
            log.info("strategy_from_controller", strategy=wanted, fallback_strategy=fallback)


async def sync_once(app: web.Application) -> str | None:
    """One full sync; the registry's version (None: the controller cannot long-poll)."""
    listing = await fetch(app)
    apply(app, listing)
    return listing.version


async def sync_loop(app: web.Application, version: str | None = None,
                    failing: bool = False) -> None:
    """Follow the controller: long-polls while it answers with a version, otherwise one
    sync every --sync-interval; an unreachable controller is retried with capped
    exponential backoff (a router started before its controller finds it soon)."""
    rs = app[ROUTER]
    loop = asyncio.get_running_loop()
    interval = rs.cfg.sync_interval_ms / 1000
    failures = int(failing)
    while True:
        if failures:
            await asyncio.sleep(min(interval, 0.25 * 2 ** min(failures, 10))
                                * random.uniform(0.8, 1.2))
        elif version is None:
            await asyncio.sleep(interval)
        started = loop.time()
        try:
            listing = await fetch(app, version)
            apply(app, listing)
            if failures:
                log.info("controller_reachable_again", controller=rs.cfg.controller_url)
            failures = 0
            took = loop.time() - started
            if version is not None and listing.version == version and took < LONG_POLL_MS / 2000:
                await asyncio.sleep(min(interval, EARLY_PAUSE_S))
            elif took < MIN_GAP_S:
                await asyncio.sleep(MIN_GAP_S - took)
            version = listing.version
        except SYNC_ERRORS as exc:
            (log.warning if not failures else log.debug)(
                "controller_sync_failed", controller=rs.cfg.controller_url,
                error=f"{type(exc).__name__}: {exc}",
                keeping_workers=len(rs.pool.workers))
            failures += 1
            version = None  # a full sync first when it answers again
