"""The controller role: the cluster's registry, heartbeats, router settings, dashboard."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from eldric import keys
from eldric.context import data_file
from eldric.registry import Role
from eldric.roles.controller.config import ControllerConfig
from eldric.roles.controller import jobs
from eldric.roles.controller.handlers import add_routes
from eldric.roles.controller.registry import Registry, maintenance
from eldric.roles.controller.state import CONTROLLER, ControllerState
from eldric.store.sqlite import Store
from eldric.tasks import cancel, spawn

log = structlog.get_logger("eldric.controller")


def _loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return addr == "localhost"


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    cs = app[CONTROLLER]
    cfg = cs.cfg
    store = cs.registry.store
    await store.open()
    await cs.registry.load()
    await cs.jobs.start(app[keys.BUS], app[keys.SESSION], app[keys.ROLE].advertise_url)
    if not _loopback(cfg.bind_address) and not cfg.cluster_key and not cfg.admin_key:
        log.warning("control_plane_open", bind=cfg.bind_address,
                    advice="set --cluster-key and --admin-key: anyone who can reach this "
                           "port can register workers and change routing")
    task = spawn(maintenance(cs.registry, cfg.worker_timeout_ms / 1000,
                             cfg.worker_expiry_ms / 1000, cfg.flush_interval_ms / 1000),
                 name="controller-maintenance")
    release = spawn(_release_on_stop(app), name="controller-release-waiters")
    log.info("controller_ready", workers=len(cs.registry.workers), db=store.path)
    yield
    await cancel(release)
    await cancel(task)
    await cs.jobs.stop()
    await cs.registry.flush()
    await store.close()


async def _release_on_stop(app: web.Application) -> None:
    """Routers long-polling the worker list are answered as the controller starts to
    stop, so they do not hold its drain for their whole wait."""
    await app[keys.STOPPING].wait()
    app[CONTROLLER].registry.close()


def build(app: web.Application, cfg: ControllerConfig) -> None:
    store = Store(data_file(app, "controller.db"), ["workers", "settings"], jobs.SCHEMA)
    registry = Registry(store)
    app[CONTROLLER] = ControllerState(cfg=cfg, registry=registry,
                                      jobs=jobs.Jobs(cfg, registry, jobs.JobTable(store)))
    app.cleanup_ctx.append(_lifecycle)
    jobs.add_routes(app)
    add_routes(app)


ROLE = Role(
    name="controller",
    port=8880,
    config=ControllerConfig,
    build=build,
    description="the cluster's registry: workers, heartbeats, router settings, dashboard",
    quickstart={"bind_address": "127.0.0.1"},
    links=(("the cluster dashboard", "/dashboard"),),
    auth_keys=lambda cfg: (cfg.admin_key, cfg.cluster_key),
    registry_by_default=True,  # the fleet's models are distributed from here
)
