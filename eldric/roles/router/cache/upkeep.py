"""Switching session affinity on at build, and the timer that keeps the prefix trees and
the session table within their bounds (the request path never sweeps)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from eldric.roles.router.cache.session import Sessions
from eldric.roles.router.state import ROUTER, RouterState
from eldric.tasks import cancel, spawn

log = structlog.get_logger("eldric.router")


def install(app: web.Application, rs: RouterState) -> None:
    cfg = rs.cfg.cache_aware
    if cfg.session_key is not None:
        rs.thinking.sessions = Sessions(cfg, rs.pool, rs.cfg.max_concurrency,
                                        rs.pool.bus.metrics.registry)
        rs.thinking.update()
    app.cleanup_ctx.append(_lifecycle)


def upkeep(rs: RouterState) -> None:
    """One round: workers that left forgotten, trees cut back, expired sessions dropped."""
    if rs.cache is not None:
        freed = rs.cache.maintain(rs.pool.workers)
        if freed:
            log.info("cache_tree_evicted", chars=freed)
    sessions = rs.thinking.sessions
    if isinstance(sessions, Sessions):
        sessions.sweep()


async def _loop(rs: RouterState) -> None:
    every = rs.cfg.cache_aware.eviction_interval_ms / 1000
    while True:
        await asyncio.sleep(every)
        upkeep(rs)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    task = spawn(_loop(app[ROUTER]), name="router-cache-upkeep")
    yield
    await cancel(task)
