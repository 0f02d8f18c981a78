"""The router as a cluster member: it registers and heartbeats as worker type "router"
(the loop is eldric.cluster.membership), saying which strategy it really runs and who
set it, so the controller's dashboard never shows a setting the router ignores.

A router is never routed to: the controller's model coverage and the routers' own sync
take only inference and cloud workers.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from eldric import __version__, keys
from eldric.cluster.membership import Membership
from eldric.roles.router.state import ROUTER
from eldric.wire.cluster import Load, RouterReport, WorkerInfo


def describe(app: web.Application) -> WorkerInfo:
    rs = app[ROUTER]
    role = app[keys.ROLE]
    forecast = rs.thinking.forecast
    return WorkerInfo(
        worker_type="router", url=role.advertise_url, models=rs.model_ids(),
        load=Load(active_requests=role.active), status=app[keys.BUS].status(role.name),
        version=__version__,
        router=RouterReport(strategy=rs.strategy.name if rs.strategy else None,
                            strategy_source=rs.strategy_source,
                            workers=len(rs.pool.workers),
                            healthy_workers=len(rs.pool.routable()),
                            forecast=(forecast.summary() if forecast is not None else None)
                            or msgspec.UNSET))


def membership(app: web.Application) -> Membership:
    return Membership.of(app, app[ROUTER].cfg, "router", describe)
