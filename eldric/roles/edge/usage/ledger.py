"""The edge's Recorder as its config asks: SQLite under --data-dir, or the farm's Redis;
the request log with --request-log sqlite, its bodies through the filter plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from eldric import keys
from eldric.context import data_file
from eldric.roles.edge.plugins import filters
from eldric.roles.edge.plugins.host import Plugins
from eldric.roles.edge.usage.config import UsageConfig
from eldric.roles.edge.usage.requestlog import Redact, RequestLog
from eldric.roles.edge.usage.store import Recorder, UsageStore
from eldric.roles.edge.usage.store_redis import RedisUsage
from eldric.roles.edge.usage.store_sqlite import SqliteUsage

if TYPE_CHECKING:
    from redis.asyncio import Redis


def redactor(plugins: Plugins) -> Redact:
    """A logged body through the filters enabled for its model (inlet for a request,
    outlet for a reply): what a PII filter masks for the model is masked in the log."""

    async def redact(hook: str, model: str, client: str, body: bytes) -> bytes:
        chain = plugins.filters_for(model or None) if plugins.active else ()
        if not chain:
            return body
        run = filters.inlet if hook == "inlet" else filters.outlet
        return await run(chain, body, {"name": client})

    return redact


def make_recorder(app: web.Application, cfg: UsageConfig, plugins: Plugins,
                  redis: Redis | None) -> Recorder:
    store: UsageStore = (RedisUsage(redis) if redis is not None
                         else SqliteUsage(data_file(app, "usage.db")))
    requests = None
    if cfg.request_log == "sqlite":
        requests = RequestLog(data_file(app, "requests.db"), days=cfg.request_log_days,
                              bound=cfg.buffer, bodies=cfg.request_log_bodies,
                              redact=redactor(plugins), prune=app[keys.ROLE].primary)
    registry: Any = app[keys.BUS].metrics.registry
    return Recorder(store, interval_ms=cfg.flush_interval_ms, bound=cfg.buffer,
                    registry=registry, requests=requests)
