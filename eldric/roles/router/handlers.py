"""The router's routes: pick a worker per request, fail over before the first byte."""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.auth import require_key
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, ModelNotFound, UpstreamUnavailable
from eldric.http import read_body
from eldric.roles.router.pool import Worker
from eldric.roles.router.state import ROUTER, RouterState
from eldric.roles.router.strategies import STRATEGIES
from eldric.serve.server import fast_post
from eldric.stream import Target, UpstreamFailure, decode_head, forward, with_fields
from eldric.wire.openai import HEAD_BY_PATH, Head, Model, ModelList

log = structlog.get_logger("eldric.router")


class _Full(Exception):
    """Every candidate is at its concurrency cap and the wait ran out."""


async def inference(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions, /v1/completions, /v1/embeddings: their heads require a
    model (other /v1/* paths are passthrough())."""
    body = await read_body(request)
    head = decode_head(body, HEAD_BY_PATH[request.path])
    request[keys.HOP].model = head.model
    return await route(request, body, head.model)


async def route(request: web.Request, body: bytes, asked: str) -> web.StreamResponse:
    rs = request.app[ROUTER]
    first = rs.cfg.aliases.get(asked, asked)
    chain = [first, *rs.cfg.fallbacks.get(asked, rs.cfg.fallbacks.get(first, []))]
    failures: list[str] = []
    tried_any = False
    for model in chain:
        candidates = [w for w in rs.pool.routable() if w.serves(model)]
        if not candidates:
            failures.append(f"{model}: no healthy worker serves it")
            continue
        tried_any = True
        # a fallback or alias: the body names the model served, rewritten once per model
        sent = with_fields(model=model)(body) if model != asked else body
        try:
            resp = await _try(request, rs, sent, model, candidates, failures)
        except _Full:
            raise UpstreamUnavailable(
                f"every worker serving {model} is at its concurrency limit; waited "
                f"{rs.cfg.queue_timeout_ms} ms", code="capacity_exceeded",
                headers={"Retry-After": "1"}) from None
        if resp is not None:
            return resp
    if not tried_any and not any(w.serves(m) for w in rs.pool.workers.values() for m in chain):
        known = sorted(rs.pool.models())
        raise ModelNotFound(f"the model {asked!r} is not served by any worker; models "
                            f"available: {', '.join(known) if known else 'none'}",
                            param="model")
    raise UpstreamUnavailable(f"could not serve {asked!r}: " + "; ".join(failures),
                              headers={"X-Eldric-Route-Reason": "all attempts failed"})


async def _try(request: web.Request, rs: RouterState, body: bytes, model: str,
               candidates: list[Worker], failures: list[str]) -> web.StreamResponse | None:
    """Up to max_attempts workers for one model, best first. None if all failed."""
    bus = request.app[keys.BUS]
    metrics = bus.metrics
    role = request.app[keys.ROLE].name
    strategy = rs.strategy
    assert strategy is not None
    tried: set[str] = set()
    for attempt in range(rs.cfg.max_attempts):
        live = [w for w in candidates if w.state.healthy and w.id not in tried]
        if not live:
            break
        ranked, reason = strategy.rank(live)
        worker = next((w for w in ranked if w.has_room(rs.cfg.max_concurrency)), None)
        if worker is None:
            worker = await _wait_for_room(rs, live)
            reason = f"{reason}; waited for a free slot"
        tried.add(worker.id)
        if attempt:
            # the failure text may be an upstream's own message: one line, bounded
            after = " ".join(failures[-1].split())[:300]
            reason = f"{reason}; attempt {attempt + 1} after {after}"
        metrics.selections.labels(role, strategy.name, worker.id).inc()
        headers = {"X-Eldric-Worker": worker.id, "X-Eldric-Strategy": strategy.name,
                   "X-Eldric-Route-Reason": reason, "X-Eldric-Model": model}
        try:
            return await forward(request, Target(worker.state, worker.url), request.path, body,
                                 timeouts=rs.timeouts, reply_headers=headers)
        except UpstreamFailure as exc:
            failures.append(f"{worker.id}: {exc.message}")
            metrics.retries.labels(role, worker.id).inc()
            _passive_mark(bus, rs, worker, exc)
            log.warning("attempt_failed", worker=worker.id, model=model, kind=exc.kind,
                        status=exc.status, attempt=attempt + 1)
        finally:
            if rs.pool.waiting:
                await rs.pool.notify()
    return None


def _passive_mark(bus, rs: RouterState, worker: Worker, exc: UpstreamFailure) -> None:  # type: ignore[no-untyped-def]
    """A connection error or timeout takes a worker out at once; 5xx only after
    max_failures in a row (outlier detection); a 4xx or a 429 never."""
    if exc.kind != "status":
        exc.mark_down(bus, worker.state)
    elif exc.status >= 500 and worker.state.consecutive_failures >= rs.cfg.max_failures:
        bus.mark(worker.state, False,
                 f"{worker.state.consecutive_failures} failures in a row: {exc.message}")


async def _wait_for_room(rs: RouterState, live: list[Worker]) -> Worker:
    """Wait (bounded in time and in how many may wait) for a candidate with a free slot."""
    pool = rs.pool
    if pool.waiting >= rs.cfg.max_queue:
        raise _Full()
    deadline = time.monotonic() + rs.cfg.queue_timeout_ms / 1000
    pool.waiting += 1
    try:
        async with pool.room:
            while True:
                ranked, _ = rs.strategy.rank([w for w in live if w.state.healthy] or live)  # type: ignore[union-attr]
                for w in ranked:
                    if w.has_room(rs.cfg.max_concurrency):
                        return w
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Full()
                try:
                    await asyncio.wait_for(pool.room.wait(), remaining)
                except TimeoutError:
                    raise _Full() from None
    finally:
        pool.waiting -= 1


async def _any_worker(request: web.Request, body: bytes) -> web.StreamResponse:
    """A /v1/* request that names no model: the strategy's first healthy worker."""
    rs = request.app[ROUTER]
    live = rs.pool.routable()
    if not live:
        raise UpstreamUnavailable("no healthy worker")
    failures: list[str] = []
    resp = await _try(request, rs, body, "", live, failures)
    if resp is None:
        raise UpstreamUnavailable("every attempt failed: " + "; ".join(failures))
    return resp


async def passthrough(request: web.Request) -> web.StreamResponse:
    """Any other /v1/* path: routed by its JSON body's model if it has one."""
    body = await read_body(request)
    model = None
    if body:
        try:
            model = msgspec.json.decode(body, type=Head).model
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            model = None  # not JSON (audio uploads): any worker
    if model is None:
        return await _any_worker(request, body)
    request[keys.HOP].model = model
    return await route(request, body, model)


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: every model a healthy worker serves, once."""
    rs = request.app[ROUTER]
    served = rs.pool.models()
    ids = served + [a for a in rs.cfg.aliases if a not in served]
    return json_response(ModelList(data=[Model(id=m, owned_by="eldric") for m in ids]))


async def workers(request: web.Request) -> web.Response:
    rs = request.app[ROUTER]
    out = []
    for w in rs.pool.workers.values():
        snap = w.state.snapshot()
        snap.update(tags=w.tags, worker_type=w.worker_type,
                    source="controller" if w.from_controller else "config",
                    max_concurrency=w.capacity(rs.cfg.max_concurrency))
        out.append(snap)
    return json_response({"workers": out, "strategy": rs.strategy.name if rs.strategy else None})


async def get_config(request: web.Request) -> web.Response:
    rs = request.app[ROUTER]
    return json_response(_config_view(rs))


class _ConfigBody(msgspec.Struct, forbid_unknown_fields=True):
    strategy: str


async def set_config(request: web.Request) -> web.Response:
    rs = request.app[ROUTER]
    require_key(request, rs.cfg.admin_key, "admin key")
    change = decode_head(await read_body(request), _ConfigBody)
    if change.strategy not in STRATEGIES:
        raise BadRequest(f"unknown strategy {change.strategy!r}; one of: "
                         f"{', '.join(STRATEGIES)}", param="strategy",
                         code="invalid_strategy")
    rs.set_strategy(change.strategy, "runtime")
    log.info("strategy_changed", strategy=change.strategy, source="runtime")
    return json_response(_config_view(rs))


def _config_view(rs: RouterState) -> dict:
    return {"strategy": rs.strategy.name if rs.strategy else None,
            "strategy_source": rs.strategy_source, "max_attempts": rs.cfg.max_attempts,
            "max_failures": rs.cfg.max_failures, "aliases": rs.cfg.aliases,
            "fallbacks": rs.cfg.fallbacks, "queue_timeout_ms": rs.cfg.queue_timeout_ms}


def add_routes(app: web.Application) -> None:
    for path in HEAD_BY_PATH:
        fast_post(app, path, inference)
    app.router.add_get("/v1/models", models)
    app.router.add_route("*", "/v1/{tail:.*}", passthrough)
    app.router.add_get("/api/v1/workers", workers)
    app.router.add_get("/api/v1/config", get_config)
    app.router.add_post("/api/v1/config", set_config)
