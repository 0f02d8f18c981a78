"""The router's routes: pick a worker per request, fail over before the first byte."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.auth import require_key
from eldric.bus.routes import json_response
from eldric.errors import (BadRequest, EldricError, ModelNotFound, NotFound,
                           UpstreamUnavailable)
from eldric.exchange import Answer, LaneRequest
from eldric.http import read_body
from eldric.processes import refresh as processes_refresh
from eldric.roles.router.attempts import Attempts, Full
from eldric.roles.router.batch import Deferred
from eldric.roles.router.context import RouteContext
from eldric.roles.router.state import ROUTER, RouterState
from eldric.roles.router.swarm import api as swarm_api, serve as swarm
from eldric.roles.router.swarm.recognise import PREFIX
from eldric.serve.server import fast_post
from eldric.store.responses_hop import add_stored_routes, stateful
from eldric.stream.sse import Tap
from eldric.stream import with_fields
from eldric.wire.priority import DEFERRED
from eldric.roles.router.swarm.config import Ensemble, SwarmConfig
from eldric.wire.cluster import STRATEGY_NAMES, StrategyName, decode_strategy_body
from eldric.wire.head import decode_head
from eldric.wire.openai import HEAD_BY_PATH, Model, ModelList, model_of
from eldric.wire.translated import TRANSLATED

log = structlog.get_logger("eldric.router")


async def inference(request: LaneRequest) -> Answer:
    """POST /v1/chat/completions, /v1/completions, /v1/embeddings: their heads require a
    model (other /v1/* paths are passthrough())."""
    try:
        body = await read_body(request)
        head = decode_head(body, HEAD_BY_PATH[request.path])
    except EldricError as exc:  # refused at the door: the reply still says so
        exc.headers = {**_not_routed(request.app[ROUTER], exc.code), **exc.headers}
        raise
    request[keys.HOP].model = head.model
    rs = request.app[ROUTER]
    plan = rs.swarms.plan(head.model, request.raw_headers)  # one look: a swarm or not
    if plan is not None:
        return await swarm.serve(request, rs, plan, body)
    if rs.replies is not None:  # --cache off: this check is all it costs
        from eldric.roles.router.cached import through_cache
        return await through_cache(request, rs, body, head.model)
    return await route(request, body, head.model)


def _not_routed(rs: RouterState, why: str | None) -> dict[str, str]:
    """The routing headers of a reply that never reached a worker."""
    return {"X-Eldric-Strategy": rs.strategy.name if rs.strategy else "",
            "X-Eldric-Route-Reason": f"not routed: {why}"}


async def route(request: LaneRequest, body: bytes, asked: str | None,
                tap: Tap | None = None, attempts: Callable[..., Attempts] = Attempts) -> Answer:
    """Route to a worker serving `asked` (None: a request naming no model, any worker)
    and the request's path, trying the model's aliases and fallbacks in turn; `tap` reads
    a streamed reply (the /v1/responses store's); `attempts` makes the Attempts (a swarm
    member's read the reply instead of relaying it: eldric.roles.router.swarm.members)."""
    rs = request.app[ROUTER]
    path = request.path
    if asked is None:
        chain: list[str | None] = [None]
    else:
        first = rs.cfg.aliases.get(asked, asked)
        chain = [first, *rs.cfg.fallbacks.get(asked, rs.cfg.fallbacks.get(first, []))]
    tries = attempts(request, rs, chain[0])
    tries.tap = tap
    thinking = rs.thinking
    try:
        for model in chain:
            tries.model = model
            serving = [w for w in rs.pool.routable() if model is None or w.serves(model)]
            candidates = [w for w in serving if w.serves_path(path)]
            if not candidates:
                what = "any model" if model is None else model
                tries.note(f"{what}: no healthy worker serves it" if not serving
                           else f"{what}: no healthy worker serving it serves {path}")
                continue
            # a fallback or alias: the body names the model served, rewritten once per model
            sent = with_fields(model=model)(body) if model != asked else body
            ctx = RouteContext(request, sent, model)
            if thinking.active:  # theme, AI, session (eldric.roles.router.thinking)
                candidates = await thinking.before(candidates, ctx, tries.member)
            tries.among(candidates, sent, ctx)
            try:
                resp = await tries.run(rs.cfg.max_attempts)
            except Full:
                raise UpstreamUnavailable(
                    f"every worker serving {model or path} is at its concurrency limit; "
                    f"waited {rs.cfg.queue_timeout_ms} ms", code="capacity_exceeded",
                    headers={"Retry-After": "1"}) from None
            except Deferred:  # never a worker's failure: nothing was sent to one
                rs.batch.deferred.inc()
                raise UpstreamUnavailable(
                    f"no idle capacity for a batch-priority request to {model or path}; "
                    f"waited {rs.cfg.batch_wait_ms} ms", code=DEFERRED,
                    headers={"Retry-After": "1"}) from None
            if resp is not None:
                return resp
        tries.model = chain[0]
        resp = tries.not_here()  # every worker tried said "not here" (501/405): as sent
        if resp is None:
            resp = tries.come_back()  # ... or "come back later" (a model loading)
        if resp is not None:
            return resp
        _no_worker(rs, asked, chain, path, tries)
    except EldricError as exc:  # every reply says how it was routed, errors too
        exc.headers = {**tries.headers(), **exc.headers}
        raise


def _no_worker(rs: RouterState, asked: str | None, chain: list[str | None], path: str,
               tries: Attempts) -> NoReturn:
    """Why nothing answered, most specific first: a model no worker serves, a path no
    worker serving the model serves (404 naming it), else 503 naming every attempt."""
    everyone = list(rs.pool.workers.values())
    if not tries.attempts:
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
    tries.exhausted(f"could not serve {what}", none=f"could not serve {what}: no healthy worker",
                    headers={"X-Eldric-Route-Reason": "all attempts failed"})


async def passthrough(request: LaneRequest) -> Answer:
    """Any other /v1/* path, and the client APIs workers translate (/v1/messages,
    /api/chat…): routed by its JSON body's model if it has one."""
    try:
        body = await read_body(request)
    except EldricError as exc:
        exc.headers = {**_not_routed(request.app[ROUTER], exc.code), **exc.headers}
        raise
    model = model_of(body)
    request[keys.HOP].model = model
    rs = request.app[ROUTER]
    if request.path == swarm.CHAT:  # spelled so that only aiohttp routes it (chat%2F…)
        plan = rs.swarms.plan(model, request.raw_headers)
        if plan is not None:
            return await swarm.serve(request, rs, plan, body)
    elif rs.swarms.named(model):
        raise BadRequest(f"a swarm ({model}) answers {swarm.CHAT} only, not {request.path}",
                         param="model", code="invalid_swarm")
    # behind: a worker may know an id this router does not (the state is the first
    # eldric hop's; a client may have talked to the worker itself)
    return await stateful(request, body, lambda body, tap: route(request, body, model, tap),
                          behind=True)


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: every model a healthy worker serves, once."""
    ids = request.app[ROUTER].model_ids()
    return json_response(ModelList(data=[Model(id=m, owned_by="eldric") for m in ids]))


async def model(request: web.Request) -> web.Response:
    """GET /v1/models/{id} (the SDKs' models.retrieve)."""
    rs = request.app[ROUTER]
    wanted = request.match_info["id"]
    if wanted in rs.pool.models() or wanted in rs.cfg.aliases or wanted in rs.swarms.names \
            or (wanted.startswith(PREFIX) and wanted[len(PREFIX):] in swarm.STRATEGIES):
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
                    max_concurrency=w.reported_max_concurrency or rs.cfg.max_concurrency)
        out.append(snap)
    return json_response({"workers": out, "strategy": rs.strategy.name if rs.strategy else None})


async def get_config(request: web.Request) -> web.Response:
    rs = request.app[ROUTER]
    return json_response(_config_view(rs))


class _ConfigBody(msgspec.Struct, forbid_unknown_fields=True):
    strategy: StrategyName | None = None
    swarm: SwarmConfig | None = None  # replaces the swarm section
    ensembles: dict[str, Ensemble] | None = None  # replaces every named ensemble


async def set_config(request: web.Request) -> web.Response:
    rs = request.app[ROUTER]
    require_key(request, rs.cfg.admin_key, "admin key")
    change = decode_strategy_body(await read_body(request), _ConfigBody)
    if change.strategy is None and change.swarm is None and change.ensembles is None:
        raise BadRequest(f"unknown strategy; one of: {', '.join(STRATEGY_NAMES)}",
                         param="strategy", code="invalid_strategy")
    if change.swarm is not None or change.ensembles is not None:
        swarm_api.apply(rs, change.swarm, change.ensembles)
        log.info("swarm_changed", ensembles=list(rs.swarms.ensembles), source="runtime")
    if change.strategy is not None:
        rs.set_strategy(change.strategy, "runtime")
        log.info("strategy_changed", strategy=change.strategy, source="runtime")
    return json_response(_config_view(rs))


def _config_view(rs: RouterState) -> dict:
    return {"strategy": rs.strategy.name if rs.strategy else None,
            "strategy_source": rs.strategy_source, "max_attempts": rs.cfg.max_attempts,
            "max_failures": rs.cfg.max_failures, "aliases": rs.cfg.aliases,
            "fallbacks": rs.cfg.fallbacks, "queue_timeout_ms": rs.cfg.queue_timeout_ms,
            **swarm_api.settings(rs)}


def add_routes(app: web.Application) -> None:
    for path in HEAD_BY_PATH:
        fast_post(app, path, inference)
    for path in TRANSLATED:
        fast_post(app, path, passthrough)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{id:.+}", model)
    add_stored_routes(app, behind=passthrough)  # GET/DELETE /v1/responses/{id}, when kept
    app.router.add_route("*", "/v1/{tail:.*}", passthrough)
    app.router.add_get("/api/v1/workers", workers)
    app.router.add_get("/api/v1/config", get_config)
    app.router.add_post("/api/v1/config", set_config)
    processes_refresh.replay(app, "/api/v1/config")  # --processes: each child's strategy too
    app.router.add_get("/api/v1/swarm", swarm_api.view)
