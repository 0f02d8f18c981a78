"""Keep the worker list (and routing settings) in step with the controller.

While the controller is unreachable the router keeps routing on the last list it had.
"""

from __future__ import annotations

import asyncio

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.roles.router.health import check
from eldric.roles.router.pool import INFERENCE_TYPES
from eldric.roles.router.state import ROUTER
from eldric.tasks import spawn
from eldric.wire.cluster import WorkerList

log = structlog.get_logger("eldric.router")

_decoder = msgspec.json.Decoder(WorkerList)


async def sync_once(app: web.Application) -> None:
    rs = app[ROUTER]
    pool = rs.pool
    headers = {"Authorization": f"Bearer {rs.cfg.api_key}"} if rs.cfg.api_key else None
    url = rs.cfg.controller_url.rstrip("/") + "/api/v1/workers"  # type: ignore[union-attr]
    async with app[keys.SESSION].get(url, headers=headers, timeout=aiohttp.ClientTimeout(
            total=10, sock_connect=rs.timeouts.connect)) as resp:
        raw = await resp.read()
        if resp.status != 200:
            raise ValueError(f"controller answered HTTP {resp.status}")
    listing = _decoder.decode(raw)

    static_by_url = {w.url: w for w in pool.workers.values() if w.static}
    seen: set[str] = set()
    for rec in listing.workers:
        if rec.status == "offline" or rec.worker_type not in INFERENCE_TYPES or not rec.id:
            continue
        url = rec.url.rstrip("/")
        if url in static_by_url:  # the same worker, also configured here
            seen.add(static_by_url[url].id)
            continue
        new = rec.id not in pool.workers
        w = pool.add(rec.id, url, tags=rec.tags, worker_type=rec.worker_type,
                     from_controller=True)
        seen.add(rec.id)
        if new:
            # Route on what it registered with until our own check has looked at it.
            w.state.models = list(rec.models)
            w.state.load = msgspec.structs.asdict(rec.load)
            w.reported_max_concurrency = rec.load.max_concurrency
            w.paths = rec.paths
            log.info("worker_synced", worker=rec.id, url=url, models=rec.models)
            spawn(check(app, w), name=f"router-check:{rec.id}")
    for w in [w for w in pool.workers.values() if w.from_controller and not w.static]:
        if w.id not in seen:
            log.info("worker_unsynced", worker=w.id, url=w.url)
            pool.remove(w.id)

    wanted = listing.router_config.strategy
    if wanted and not rs.strategy_fixed and (rs.strategy is None or rs.strategy.name != wanted):
        from eldric.roles.router.strategies import STRATEGIES

        if wanted in STRATEGIES:
            rs.set_strategy(wanted, "controller")
            log.info("strategy_from_controller", strategy=wanted)
        else:
            log.warning("controller_strategy_unknown", strategy=wanted)


async def sync_loop(app: web.Application) -> None:
    rs = app[ROUTER]
    failing = False
    while True:
        await asyncio.sleep(rs.cfg.sync_interval_ms / 1000)
        try:
            await sync_once(app)
            if failing:
                log.info("controller_reachable_again", controller=rs.cfg.controller_url)
            failing = False
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, msgspec.DecodeError,
                msgspec.ValidationError) as exc:
            (log.warning if not failing else log.debug)(
                "controller_sync_failed", controller=rs.cfg.controller_url,
                error=f"{type(exc).__name__}: {exc}",
                keeping_workers=len(rs.pool.workers))
            failing = True
