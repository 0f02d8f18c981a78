"""The router role: picks a worker for every request (port 8881)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from eldric import keys
from eldric.errors import ConfigError
from eldric.registry import Role
from eldric.roles.router.batch import BatchStats
from eldric.roles.router.config import RouterConfig
from eldric.roles.router import ollama_api
from eldric.roles.router.ai import api as ai_api
from eldric.roles.router.predict import sampling as predict
from eldric.roles.router.cache import upkeep as cache_upkeep
from eldric.roles.router.handlers import add_routes
from eldric.roles.router.knowledge import setup as knowledge
from eldric.roles.router.health import prober, waiting_for
from eldric.roles.router.membership import membership
from eldric.roles.router.pool import WorkerPool
from eldric.roles.router.state import ROUTER, RouterState
from eldric.roles.router.swarm import api as swarm_api
from eldric.roles.router.swarm.account import SwarmStats
from eldric.roles.router.sync import sync_loop, sync_once
from eldric.store.responses import install
from eldric.stream import Timeouts
from eldric.tasks import cancel, spawn

log = structlog.get_logger("eldric.router")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    rs = app[ROUTER]
    member = membership(app)
    member.load_id()
    version, failed = None, False
    if rs.cfg.controller_url:
        try:
            version = await sync_once(app)
        except Exception as exc:  # the loop retries; the router starts anyway
            failed = True
            log.warning("controller_sync_failed", controller=rs.cfg.controller_url,
                        error=f"{type(exc).__name__}: {exc}")
    probes = app[keys.PROBER]
    await probes.round()
    probes.start()
    tasks = []
    if rs.cfg.controller_url:
        # Registered after the first sync and check, so it reports what it can route.
        tasks = [spawn(sync_loop(app, version, failed), name="router-sync"),
                 spawn(member.run(), name="router-registration")]
    log.info("router_ready", strategy=rs.strategy.name if rs.strategy else None,
             strategy_source=rs.strategy_source, worker_id=member.worker_id,
             workers=[w.id for w in rs.pool.workers.values()],
             healthy=[w.id for w in rs.pool.routable()])
    yield
    await probes.stop()
    for task in tasks:
        await cancel(task)


def build(app: web.Application, cfg: RouterConfig) -> None:
    pool = WorkerPool(app[keys.BUS], role="router", tunnel_key=cfg.api_key,
                      share=app[keys.ROLE].processes)
    for spec in cfg.workers:
        try:
            pool.add(spec.url.rstrip("/"), spec.url, tags=spec.tags, static=True)
        except ValueError as exc:  # a tunnel:// URL naming no tunnel
            raise ConfigError(f"router.workers: {exc}") from None
    rs = RouterState(cfg=cfg, pool=pool, timeouts=Timeouts.from_config(cfg))
    predict.install(app, rs)  # before the strategy: load_based breaks ties with it
    if cfg.strategy is not None:
        rs.set_strategy(cfg.strategy, "config")
    else:
        rs.set_strategy("load_based", "default")
    swarm_api.check(cfg.ensembles, cfg.swarm)
    rs.swarm_stats = SwarmStats(app[keys.BUS].metrics.registry)
    rs.batch = BatchStats(app[keys.BUS].metrics.registry, pool)
    app[ROUTER] = rs
    if cfg.cache.on:  # off: not imported, rs.replies stays None
        from eldric.roles.router import cached

        cached.install(app, rs)
    ai_api.install(app, rs)  # AI routing (eldric.roles.router.ai): its scorer and routes
    knowledge.install(app, cfg.knowledge, rs.thinking)  # themes file refused here when bad
    app[keys.PROBER] = prober(app)
    app.cleanup_ctx.append(_lifecycle)
    cache_upkeep.install(app, rs)  # session affinity, the trees' eviction timer
    install(app, cfg.responses)  # the /v1/responses store (eldric.store.responses)
    add_routes(app)
    ollama_api.add_routes(app)


ROLE = Role(
    name="router",
    port=8881,
    config=RouterConfig,
    build=build,
    waiting_for=waiting_for,
    description="picks a worker per request: strategies, health, failover, fallbacks",
    # One host: the local worker (its default port) from the start, and whatever else
    # registers with the local controller, on loopback.
    quickstart={"bind_address": "127.0.0.1", "workers": [{"url": "http://127.0.0.1:8890"}],
                "controller_url": "http://127.0.0.1:8880", "sync_interval_ms": 2000,
                "health_check_interval_ms": 1000, "heartbeat_interval_ms": 5000},
    auth_keys=lambda cfg: (cfg.admin_key, cfg.api_key),
)
