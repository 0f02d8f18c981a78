"""The edge role: the cluster's door: TLS, API keys, rate limits, the /chat page."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.context import data_file
from eldric.errors import ConfigError
from eldric.processes import refresh as processes_refresh
from eldric.registry import Role
from eldric.roles.edge import batch, cluster_relay, cors, tunnel
from eldric.roles.edge.clients import LocalClients, RedisClients
from eldric.roles.edge.config import LIMITS, EdgeConfig
from eldric.roles.edge.farm import Farm
from eldric.roles.edge.handlers import NO_ADMIN, add_routes
from eldric.roles.edge.limits import LocalLimiter, RedisLimiter
from eldric.roles.edge.metrics import EdgeMetrics
from eldric.roles.edge.plugins import api as plugins_api
from eldric.roles.edge.plugins.host import Plugins
from eldric.roles.edge.routers import Routers, prober
from eldric.roles.edge.state import EDGE, EdgeState
from eldric.roles.edge.tls import listen
from eldric.roles.edge.usage import api as usage_api
from eldric.roles.edge.usage import budgets_saved
from eldric.roles.edge.usage import page as spend_page
from eldric.roles.edge.usage.budgets import Budgets
from eldric.roles.edge.usage.budgets_redis import RedisBudgets
from eldric.roles.edge.usage.face import Usage
from eldric.roles.edge.usage.ledger import make_recorder
from eldric.roles.edge.usage.prices import Prices
from eldric.store.responses import install
from eldric.store.sqlite import Store
from eldric.stream import Timeouts

log = structlog.get_logger("eldric.edge")


def _networks(items: list[str]) -> list:  # type: ignore[type-arg]
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"trusted_proxies: {item!r} is not an IP address or CIDR") from None
    return out


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    es = app[EDGE]
    await es.clients.open()
    if es.saved is not None:
        await es.saved.start()
    routers, store = app[keys.PROBER], es.farm.prober(es.cfg.health_check_interval_ms / 1000)
    routers.start(at_once=True)
    store.start()
    es.plugins.edge_url = _own_url(app)
    es.plugins.edge_cert = leaf_certificate(es.cfg.tls.cert_file) if es.tls else ""
    await es.plugins.reload()  # children start in the background: the edge does not wait
    es.plugins.start_mcp(es.cfg.mcp_servers)  # ... nor for its MCP servers
    if es.recorder is not None:
        await es.recorder.start()
    log.info("edge_ready", mode=es.cfg.mode, tls=es.tls, require_api_key=es.require_key,
             routers=[s.url for s in es.routers.states])
    yield
    if es.recorder is not None:  # its last flush: before the plugins (the request log's
        await es.recorder.stop()  # filters) and the Redis connection go
    await es.plugins.stop()
    await routers.stop()
    await store.stop()
    if es.saved is not None:
        await es.saved.stop()
    await es.clients.close()


def leaf_certificate(path: str | None) -> str:
    """The first certificate of the edge's chain file (PEM), for the plugins to pin
    (edge_url names loopback, which the certificate need not cover). Only the
    certificate: the file may hold the private key too, which never leaves the edge."""
    try:
        text = Path(path or "").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    i = text.find(begin)
    j = text.find(end, i)
    return text[i:j + len(end)] + "\n" if i >= 0 and j >= 0 else ""


def _own_url(app: web.Application) -> str:
    """Where a plugin reaches this edge: its own port on loopback (bound to all
    addresses) or on the address it is bound to."""
    cfg = app[keys.CONFIG]
    url = urlsplit(app[keys.ROLE].advertise_url)
    host = "127.0.0.1" if cfg.bind_address in ("0.0.0.0", "::", "") else cfg.bind_address
    host = f"[{host}]" if ":" in host else host
    return f"{url.scheme}://{host}:{url.port}"


class EdgeHealth(msgspec.Struct):
    status: str
    role: str = "edge"
    routers_healthy: int = 0
    routers_total: int = 0
    shared_store: str | None = None  # farm mode: "ok" or why not
    usage_store: str | None = None  # usage on: "ok", or why its last flush failed


def edge_health(app: web.Application) -> EdgeHealth:
    """The routers' state, and in farm mode whether Redis answers (degraded if not)."""
    es = app[EDGE]
    status = app[keys.BUS].status("edge")
    store = None
    if es.farm.shared:
        store = f"unreachable: {es.farm.error}" if es.farm.degraded else "ok"
        if es.farm.degraded and status == "healthy":
            status = "degraded"
    healthy = sum(1 for s in es.routers.states if s.healthy)
    usage = None if es.recorder is None else (
        f"unwritable: {es.recorder.error}" if es.recorder.error else "ok")
    return EdgeHealth(status=status, routers_healthy=healthy,
                      routers_total=len(es.routers.states), shared_store=store,
                      usage_store=usage)


def _checked_healthy(routers: Routers) -> bool:
    # A router counts as healthy until its first check: only a passed check says so.
    return any(s.healthy and s.last_check is not None for s in routers.states)


async def waiting_for(app: web.Application) -> str | None:
    """Ready once a router passed a health check (checking again now if none has)."""
    routers = app[EDGE].routers
    if not routers.states:
        return "a router (none given with --routers)"
    if _checked_healthy(routers):
        return None
    await app[keys.PROBER].round(timeout=5.0)
    if _checked_healthy(routers):
        return None
    return "a healthy router (" + "; ".join(
        f"{s.url}: {s.last_error or 'not checked yet'}" for s in routers.states) + ")"


def _exact_across_processes(cfg: EdgeConfig) -> str | None:
    """What an edge of several processes (--processes) cannot keep exact by itself, each
    process counting apart: None when nothing is. In farm mode Redis keeps all of it,
    for the processes as for edges on other hosts (docs/design-notes.md, "Every core")."""
    rl = cfg.rate_limits
    if rl.global_rpm or rl.per_ip_rpm or rl.per_key_rpm:
        return "its rate limits (--global-rpm, --per-ip-rpm, --per-key-rpm)"
    for name, c in cfg.auth.clients.items():
        if any(getattr(c, f) is not None for f in LIMITS):
            return f"client {name}'s limits and budgets (auth.clients)"
    return None


def build(app: web.Application, cfg: EdgeConfig) -> None:
    processes = app[keys.ROLE].processes
    if processes > 1 and cfg.mode != "farm" and (what := _exact_across_processes(cfg)):
        raise ConfigError(f"--processes {processes}: {what} must hold across the edge's "
                          "processes: run it in farm mode (--mode farm --redis-url URL), "
                          "where they share one Redis, as edges on several hosts do; or "
                          "turn them off, or run one process")
    static = dict(cfg.auth.api_keys)
    for i, key in enumerate(cfg.api_key, 1):
        static.setdefault(key, f"key-{i}")
    window = cfg.rate_limits.window_ms
    r = None
    if cfg.mode == "farm":
        if not cfg.redis_url:
            raise ConfigError("--mode farm needs --redis-url (the store the edges share)")
        import redis.asyncio as aioredis

        r = aioredis.from_url(cfg.redis_url)
        clients = RedisClients(r, static, cfg.auth.clients)
        limiter = RedisLimiter(r, window)
        shared_budgets = RedisBudgets(r, window)
    else:
        db = Store(data_file(app, "edge.db"), ["clients", budgets_saved.TABLE])
        clients = LocalClients(db, static, cfg.auth.clients)
        # --processes: a child re-reads them after an admin call
        processes_refresh.add(app, clients.reload, ("/api/v1/clients/register",
                                                    "/api/v1/clients/{name}"))
        limiter = LocalLimiter(window)
        shared_budgets = None
    if cfg.auth.require_api_key and not static and not cfg.admin_key:
        raise ConfigError("the edge requires API keys but has none: give --api-key KEY (or "
                          "auth.api_keys), or --admin-key to create clients, or set "
                          "auth.require_api_key to false")
    if cfg.auth.require_api_key and not cfg.responses.store:
        # The edge keeps the client's key (it never goes upstream): behind it every
        # caller is one keyless owner, so a router's store would let one key read, chain
        # on and delete another's responses (docs/design-notes.md, "Whose").
        raise ConfigError("--no-responses-store needs --no-require-api-key: with API keys "
                          "required the edge must keep /v1/responses state itself, per "
                          "key (behind the edge every key is one owner)")
    farm = Farm(clients, limiter, window, shared=cfg.mode == "farm")
    metrics = EdgeMetrics(app[keys.BUS].metrics.registry)
    app[EDGE] = EdgeState(
        cfg=cfg, timeouts=Timeouts.from_config(cfg), routers=Routers(app, cfg.router_urls),
        clients=clients, farm=farm,
        budgets=Budgets(window, cfg.usage.default_max_tokens, Prices(cfg.usage.prices).cost,
                        farm, shared_budgets, metrics.budget_refused),
        metrics=metrics, tls=not cfg.no_tls,
        require_key=cfg.auth.require_api_key, trusted=_networks(cfg.trusted_proxies),
        plugins=Plugins(Path(cfg.plugins_dir or os.path.join(app[keys.PROCESS].data_dir,
                                                             "plugins"))))
    es = app[EDGE]
    if shared_budgets is None:  # standalone: the counts kept in edge.db across restarts
        es.saved = budgets_saved.Saved(db, es.budgets.local, cfg.usage.flush_interval_ms)
    if cfg.usage.on:
        es.recorder = make_recorder(app, cfg.usage, es.plugins, r)
        es.usage = Usage(cfg.usage, es.budgets, es.recorder, es.metrics)
    if cfg.cache.on:  # off: not imported, es.cache stays None
        from eldric.roles.edge import cached

        cached.install(app, es, r)
    app[keys.PROBER] = prober(app, es.routers, cfg.health_check_interval_ms / 1000)
    app[keys.HEALTH] = edge_health
    if cfg.cors_origins:
        app.middlewares.append(cors.middleware(cfg.cors_origins))
    app.cleanup_ctx.append(_lifecycle)
    install(app, cfg.responses, r)  # after: closed before the clients' Redis connection
    batch.install(app, cfg)  # before add_routes: its /v1/files, /v1/batches ahead of /v1/*
    add_routes(app)
    tunnel.install(app, cfg)  # the NAT tunnel's endpoints (/api/v1/tunnel/…)
    cluster_relay.install(app, cfg)  # workers registering through the edge
    plugins_api.add_routes(app)
    usage_api.add_routes(app)
    spend_page.add_routes(app)  # /dashboard


ROLE = Role(
    name="edge",
    port=443,
    config=EdgeConfig,
    build=build,
    listen=listen,
    waiting_for=waiting_for,
    links=(("the chat", "/chat"),),
    description="the door: TLS, API keys, rate limits, web chat",
    # One host: plain HTTP on loopback, no key needed there, in front of the local router.
    # Nor a rate limit: the one user is on loopback (the chat page's own calls count too);
    # a flag or the file still sets one.
    quickstart={"no_tls": True, "http_port": 8080, "bind_address": "127.0.0.1",
                "router_urls": ["http://127.0.0.1:8881"],
                "auth": {"require_api_key": False},
                "rate_limits": {"global_rpm": 0, "per_ip_rpm": 0, "per_key_rpm": 0}},
    env_hints={"port": "ELDRIC_EDGE_HTTP_PORT (with --no-tls; ELDRIC_EDGE_PORT for HTTPS)"},
    # Its api_keys are its clients', not the cluster's; without --admin-key the registry
    # is closed, as the edge's own admin API is (the edge faces the internet).
    auth_keys=lambda cfg: (cfg.admin_key or NO_ADMIN, None),
)
