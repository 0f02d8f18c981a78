"""The router's routes: pick a worker per request, fail over before the first byte."""

from __future__ import annotations

import asyncio
import time
from typing import NoReturn

import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.auth import require_key
from eldric.bus.routes import json_response
from eldric.errors import (EldricError, ModelNotFound, NotFound,
                           UpstreamUnavailable)
from eldric.http import read_body
from eldric.roles.router.health import passive_mark
from eldric.roles.router.pool import Worker
from eldric.roles.router.state import ROUTER, RouterState
from eldric.serve.server import fast_post
from eldric.stream import Target, UpstreamFailure, forward, with_fields
from eldric.stream.headers import header_text
from eldric.wire.cluster import StrategyName, decode_strategy_body
from eldric.wire.head import decode_head
from eldric.wire.openai import HEAD_BY_PATH, Head, Model, ModelList

log = structlog.get_logger("eldric.router")


class _Full(Exception):
    """Every candidate is at its concurrency cap and the wait ran out."""


async def inference(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions, /v1/completions, /v1/embeddings: their heads require a
    model (other /v1/* paths are passthrough())."""
    try:
        body = await read_body(request)
        head = decode_head(body, HEAD_BY_PATH[request.path])
    except EldricError as exc:  # refused at the door: the reply still says so
        exc.headers = {**_not_routed(request.app[ROUTER], exc.code), **exc.headers}
        raise
    request[keys.HOP].model = head.model
    return await route(request, body, head.model)


def _not_routed(rs: RouterState, why: str | None) -> dict[str, str]:
    """The routing headers of a reply that never reached a worker."""
    return {"X-Eldric-Strategy": rs.strategy.name if rs.strategy else "",
            "X-Eldric-Route-Reason": f"not routed: {why}"}


async def route(request: web.Request, body: bytes,
                asked: str | None) -> web.StreamResponse:
    """Route to a worker serving `asked` (None: a request naming no model, any worker)
    and the request's path, trying the model's aliases and fallbacks in turn."""
    rs = request.app[ROUTER]
    path = request.path
    if asked is None:
        chain: list[str | None] = [None]
    else:
        first = rs.cfg.aliases.get(asked, asked)
        chain = [first, *rs.cfg.fallbacks.get(asked, rs.cfg.fallbacks.get(first, []))]
    tries = _Tries(rs, model=chain[0])
    try:
        for model in chain:
            tries.model = model
            serving = [w for w in rs.pool.routable() if model is None or w.serves(model)]
            candidates = [w for w in serving if w.serves_path(path)]
            if not candidates:
                what = "any model" if model is None else model
                tries.failures.append(f"{what}: no healthy worker serves it" if not serving
                                      else f"{what}: no healthy worker serving it serves {path}")
                continue
            # a fallback or alias: the body names the model served, rewritten once per model
            sent = with_fields(model=model)(body) if model != asked else body
            try:
                resp = await _try(request, rs, sent, candidates, tries)
            except _Full:
                raise UpstreamUnavailable(
                    f"every worker serving {model or path} is at its concurrency limit; "
                    f"waited {rs.cfg.queue_timeout_ms} ms", code="capacity_exceeded",
                    headers={"Retry-After": "1"}) from None
            if resp is not None:
                return resp
        tries.model = chain[0]
        if tries.unsupported is not None and not tries.other_failures:
            # Every worker tried said "not here" (501/405): that is the answer, as sent.
            resp = tries.unsupported.response()
            resp.headers.update(tries.headers())
            return resp
        _no_worker(rs, asked, chain, path, tries)
    except EldricError as exc:  # every reply says how it was routed, errors too
        exc.headers = {**tries.headers(), **exc.headers}
        raise


def _no_worker(rs: RouterState, asked: str | None, chain: list[str | None], path: str,
               tries: _Tries) -> NoReturn:
    """Why nothing answered, most specific first: a model no worker serves, a path no
    worker serving the model serves (404 naming it), else 503 naming every attempt."""
    everyone = list(rs.pool.workers.values())
    if not tries.tried:
        if asked is not None and not any(w.serves(m) for w in everyone for m in chain
                                         if m is not None):
            known = sorted(rs.pool.models())
            raise ModelNotFound(f"the model {asked!r} is not served by any worker; models "
                                f"available: {', '.join(known) if known else 'none'}",
                                param="model")
        if everyone and not any((m is None or w.serves(m)) and w.serves_path(path)
                                for w in everyone for m in chain):
            whose = "any worker" if asked is None else f"any worker serving {asked!r}"
            raise NotFound(f"{path} is not served by {whose}", code="path_not_served")
    what = "the request" if asked is None else repr(asked)
    detail = "; ".join(tries.failures) or "no healthy worker"
    raise UpstreamUnavailable(f"could not serve {what}: {detail}",
                              headers={"X-Eldric-Route-Reason": "all attempts failed"})


class _Tries:
    """What the attempts at one request did: for the 503's text, the routing headers of
    an error reply, and the "not here" answer to relay when nobody serves the path."""

    def __init__(self, rs: RouterState, model: str | None) -> None:
        self.rs = rs
        self.model = model
        self.failures: list[str] = []
        self.tried: list[str] = []  # worker ids, in order
        self.unsupported: UpstreamFailure | None = None
        self.other_failures = 0

    def headers(self) -> dict[str, str]:
        strategy = self.rs.strategy.name if self.rs.strategy else ""
        out = {"X-Eldric-Strategy": strategy}
        if self.model is not None:
            out["X-Eldric-Model"] = header_text(self.model)
        if self.tried:
            out["X-Eldric-Worker"] = self.tried[-1]
        return out

    def failed(self, worker: Worker, exc: UpstreamFailure) -> None:
        self.failures.append(f"{worker.id}: {exc.message}")
        if exc.kind == "unsupported":
            self.unsupported = exc
        else:
            self.other_failures += 1


async def _try(request: web.Request, rs: RouterState, body: bytes, candidates: list[Worker],
               tries: _Tries) -> web.StreamResponse | None:
    """Up to max_attempts workers for one model, best first. None if all failed."""
    app = request.app
    metrics = app[keys.BUS].metrics
    role = app[keys.ROLE].name
    strategy = rs.strategy
    assert strategy is not None
    tried: set[str] = set()
    for attempt in range(rs.cfg.max_attempts):
        live = [w for w in candidates if w.state.healthy and w.id not in tried]
        if not live:
            break
        ranked, reason = strategy.rank(live)
        ranked, suspects = _suspects_last(ranked)
        if suspects and ranked[0] not in suspects:
            reason = f"{reason}; {len(suspects)} failing worker(s) ranked last"
        worker = next((w for w in ranked if w.has_room(rs.cfg.max_concurrency)), None)
        if worker is None:
            worker = await _wait_for_room(rs, live)
            reason = f"{reason}; waited for a free slot"
        tried.add(worker.id)
        tries.tried.append(worker.id)
        if attempt:
            # the failure text may be an upstream's own message: one line, bounded
            after = header_text(tries.failures[-1])
            reason = f"{reason}; attempt {attempt + 1} after {after}"
        metrics.selections.labels(role, strategy.name, worker.id).inc()
        headers = {"X-Eldric-Worker": worker.id, "X-Eldric-Strategy": strategy.name,
                   "X-Eldric-Route-Reason": reason}
        if tries.model is not None:
            headers["X-Eldric-Model"] = header_text(tries.model)
        try:
            return await forward(request, Target(worker.state, worker.url), request.path, body,
                                 timeouts=rs.timeouts, reply_headers=headers)
        except UpstreamFailure as exc:
            tries.failed(worker, exc)
            metrics.retries.labels(role, worker.id).inc()
            passive_mark(app, worker, exc)
            log.warning("attempt_failed", worker=worker.id, model=tries.model, kind=exc.kind,
                        status=exc.status, attempt=attempt + 1)
        finally:
            if rs.pool.waiting:
                await rs.pool.notify()
    return None


def _suspects_last(ranked: list[Worker]) -> tuple[list[Worker], list[Worker]]:
    """Workers that failed max_failures times in a row go after the others for a while
    (see passive_mark): still routable, tried only when the others cannot answer."""
    now = time.monotonic()
    suspects = [w for w in ranked if w.suspect_until > now]
    if not suspects:
        return ranked, suspects
    return [w for w in ranked if w.suspect_until <= now] + suspects, suspects


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


async def passthrough(request: web.Request) -> web.StreamResponse:
    """Any other /v1/* path: routed by its JSON body's model if it has one."""
    try:
        body = await read_body(request)
    except EldricError as exc:
        exc.headers = {**_not_routed(request.app[ROUTER], exc.code), **exc.headers}
        raise
    model = None
    if body:
        try:
            model = msgspec.json.decode(body, type=Head).model
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError,
                RecursionError):
            model = None  # not JSON (audio uploads): any worker
    request[keys.HOP].model = model
    return await route(request, body, model)


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: every model a healthy worker serves, once."""
    ids = request.app[ROUTER].model_ids()
    return json_response(ModelList(data=[Model(id=m, owned_by="eldric") for m in ids]))


async def model(request: web.Request) -> web.Response:
    """GET /v1/models/{id} (the SDKs' models.retrieve)."""
    rs = request.app[ROUTER]
    wanted = request.match_info["id"]
    if wanted in rs.pool.models() or wanted in rs.cfg.aliases:
        return json_response(Model(id=wanted, owned_by="eldric"))
    raise ModelNotFound(f"the model {wanted!r} is not served by any worker", param="model",
                        headers=_not_routed(rs, "model_not_found"))


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
    strategy: StrategyName


async def set_config(request: web.Request) -> web.Response:
    rs = request.app[ROUTER]
    require_key(request, rs.cfg.admin_key, "admin key")
    change = decode_strategy_body(await read_body(request), _ConfigBody)
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
    app.router.add_get("/v1/models/{id:.+}", model)
    app.router.add_route("*", "/v1/{tail:.*}", passthrough)
    app.router.add_get("/api/v1/workers", workers)
    app.router.add_get("/api/v1/config", get_config)
    app.router.add_post("/api/v1/config", set_config)
