"""The forecaster on the router: install() puts a Forecaster (forecaster.py) on its
Thinking, samples it on a timer and serves GET /api/v1/predict (api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from eldric import keys
from eldric.roles.router.predict import api
from eldric.roles.router.predict.forecaster import Forecaster
from eldric.roles.router.state import ROUTER, RouterState
from eldric.tasks import cancel, every, spawn

log = structlog.get_logger("eldric.router")


def install(app: web.Application, rs: RouterState) -> None:
    """Before the strategy is set: load_based reads the forecaster it finds there."""
    app.router.add_get("/api/v1/predict", api.predict)
    cfg = rs.cfg.predict
    if not cfg.enabled:
        return
    role = app[keys.ROLE]
    pool = rs.pool
    rs.thinking.forecast = Forecaster(cfg, app[keys.BUS].metrics, role.name,
                                      in_flight=lambda: role.active,
                                      queued=lambda: pool.waiting, workers=pool.routable)
    app.cleanup_ctx.append(_sampling)


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    forecast = app[ROUTER].thinking.forecast

    async def sample() -> None:
        try:
            forecast.sample()
        except Exception:  # a bad sample must not end the sampling
            log.exception("predict_sample_failed")

    task = spawn(every(forecast.interval, sample, at_once=True), name="router-predict")
    yield
    await cancel(task)
