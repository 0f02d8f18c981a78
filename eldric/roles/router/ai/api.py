"""AI routing switched on, off and over at run time: POST /api/v1/ai/configure (admin key
when set) and GET /api/v1/ai/status."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from aiohttp import web

from eldric import explain, keys
from eldric.auth import require_key
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, ConfigError
from eldric.http import read_body
from eldric.processes import refresh as processes_refresh
from eldric.roles.router.ai.config import AiRoutingConfig, problem
from eldric.roles.router.ai.decider import Decider
from eldric.roles.router.ai.stats import AiStats
from eldric.roles.router.state import ROUTER, RouterState

log = structlog.get_logger("eldric.router.ai")

_URL_NAMES = ("llm_url", "ollama_url")


class AiRouting:
    """The section as it is now (config, then runtime), its decider, and its counts."""

    def __init__(self, app: web.Application, rs: RouterState, cfg: AiRoutingConfig) -> None:
        self.app = app
        self.rs = rs
        self.stats = AiStats(app[keys.BUS].metrics.registry)
        self.cfg = cfg
        self.decider: Decider | None = None
        self.apply(cfg)

    def apply(self, cfg: AiRoutingConfig) -> None:
        """Put these settings in force: a new decider (an empty cache), or none."""
        self.cfg = cfg
        app = self.app
        self.decider = None if cfg.mode == "none" else Decider(
            cfg, lambda: app[keys.SESSION], self.stats)
        self.rs.thinking.ai = self.decider
        self.rs.thinking.update()

    def view(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"mode": cfg.mode, "model": cfg.llm_model, "url": cfg.url,
                "timeout_ms": cfg.timeout_ms,
                "fallback_strategy": self.rs.strategy.name if self.rs.strategy else None,
                "cache": {"size": cfg.cache_size, "ttl_ms": cfg.cache_ttl_ms,
                          "entries": len(self.decider.cache) if self.decider else 0},
                "in_flight": self.decider.inflight if self.decider else 0,
                **self.stats.view()}


AI: web.AppKey[AiRouting] = web.AppKey("eldric_router_ai", AiRouting)


def install(app: web.Application, rs: RouterState) -> None:
    """At build: the configured section checked (a start refused naming the key) and put
    in force, and the two routes."""
    cfg = rs.cfg.ai_routing
    bad = problem(cfg)
    if bad is not None:
        raise ConfigError(f"`router.ai_routing.{bad[0]}`: {bad[1]}")
    app[AI] = AiRouting(app, rs, cfg)
    app.router.add_post("/api/v1/ai/configure", configure)
    processes_refresh.replay(app, "/api/v1/ai/configure")  # --processes: in every process
    app.router.add_get("/api/v1/ai/status", status)


async def status(request: web.Request) -> web.Response:
    return json_response(request.app[AI].view())


async def configure(request: web.Request) -> web.Response:
    """The fields given replace the current ones (the others stay); giving one of the
    URL's two names drops the other."""
    ai = request.app[AI]
    require_key(request, request.app[ROUTER].cfg.admin_key, "admin key")
    body = await read_body(request)
    try:
        change = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}",
                         code="invalid_json") from None
    if not isinstance(change, dict) or not change:
        raise BadRequest("expected a JSON object of ai_routing settings, e.g. "
                         '{"mode": "autonomous", "llm_model": "…", "llm_url": "…"}',
                         code="invalid_body")
    merged = msgspec.to_builtins(ai.cfg)
    if any(name in change for name in _URL_NAMES):
        for name in _URL_NAMES:
            merged.pop(name, None)
    merged.update(change)
    try:
        cfg = msgspec.convert(merged, AiRoutingConfig)
    except msgspec.ValidationError as exc:
        path, what = explain.validation(exc, AiRoutingConfig, merged)
        field = path.removeprefix("$.").split(".")[0].split("[")[0] or None
        raise BadRequest(f"`{path.removeprefix('$.')}`: {what}", param=field,
                         code="invalid_ai_routing") from None
    bad = problem(cfg)
    if bad is not None:
        raise BadRequest(f"`{bad[0]}`: {bad[1]}", param=bad[0], code="invalid_ai_routing")
    ai.apply(cfg)
    log.info("ai_routing_changed", mode=cfg.mode, model=cfg.llm_model, url=cfg.url,
             timeout_ms=cfg.timeout_ms, source="runtime")
    return json_response(ai.view())
