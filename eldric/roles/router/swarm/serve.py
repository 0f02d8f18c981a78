"""A swarm request from the handler's point of view: who the members are, within which
bounds (its ensemble's, the request's `swarm` field, the router's `swarm` section), the
strategy run, and the reply (whole here, streamed in stream.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog

from eldric import keys
from eldric.errors import BadRequest, EldricError, ModelNotFound
from eldric.exchange import Answer, LaneRequest, encode_headers
from eldric.roles.router.state import RouterState
from eldric.roles.router.swarm import account, members, spans
from eldric.roles.router.swarm.config import Bounds, Member, MemberSpec, member_spec
from eldric.roles.router.swarm.recognise import HEADER, Plan
from eldric.roles.router.swarm.run import Limits, Swarm
from eldric.roles.router.swarm.strategies import STRATEGIES
from eldric.roles.router.swarm.strategy import Chosen, Final, Generate, Result, Strategy

log = structlog.get_logger("eldric.router.swarm")

CHAT = "/v1/chat/completions"


class Asked(Bounds, kw_only=True, forbid_unknown_fields=True):
    """The request's own `swarm` field (extra_body with the SDKs): members, judge, bounds."""

    members: list[Member] | None = None
    judge: Member | None = None


def prepare(request: LaneRequest, rs: RouterState, plan: Plan, body: bytes
            ) -> tuple[Swarm, Strategy]:
    """The swarm to run, or a 400 saying what is wrong with the request."""
    if request.path != CHAT:
        raise BadRequest(f"a swarm ({plan.label}) answers {CHAT} only, not {request.path}",
                         param="model", code="invalid_swarm")
    client = msgspec.json.decode(body)
    if not isinstance(client.get("messages"), list) or not client["messages"]:
        raise BadRequest("a swarm needs messages", param="messages")
    # the strategies read the messages (roles, content) to build their prompts: a message
    # that is not an object was a crash inside the swarm (a 500), not the client's 400
    if not all(isinstance(m, dict) for m in client["messages"]):
        raise BadRequest("each message must be an object", param="messages",
                         code="invalid_request")
    if not isinstance(client.get("stream_options") or {}, dict):  # read by stream.py
        raise BadRequest("stream_options must be an object", param="stream_options",
                         code="invalid_request")
    try:
        asked = msgspec.convert(client.pop("swarm", None) or {}, Asked)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid swarm field: {exc}", param="swarm",
                         code="invalid_swarm") from None
    sw = rs.swarms
    cfg = sw.cfg
    ens = plan.ensemble
    strategy = STRATEGIES.get(plan.strategy)
    if strategy is None:  # named by config or a header, not (yet) built here
        raise BadRequest(f"the swarm strategy {plan.strategy!r} is not available on this "
                         f"router; available: {', '.join(STRATEGIES)}", param="model",
                         code="invalid_swarm")
    listed = asked.members or (ens.members if ens is not None else None)
    if listed:
        if len(listed) > cfg.max_members:
            raise BadRequest(f"{len(listed)} swarm members; at most {cfg.max_members} "
                             "(swarm.max_members)", param="swarm", code="invalid_swarm")
        chosen = [member_spec(m) for m in listed]
    else:
        chosen = _default_members(rs, plan.model, cfg.max_members)
    if len(chosen) < strategy.min_members:
        raise BadRequest(f"swarm/{strategy.name} needs at least {strategy.min_members} "
                         f"members; it has {len(chosen)}", param="swarm", code="invalid_swarm")
    judge_of = asked.judge or (ens.judge if ens is not None else None)
    judge = member_spec(judge_of) if judge_of is not None else \
        MemberSpec(model=chosen[0].model)  # the first member's model, without its settings

    for m in (*chosen, judge):  # members are routed to workers: a swarm is none of them
        if sw.named(m.model):
            raise BadRequest(f"the swarm member or judge {m.model!r} is a swarm, not a "
                             "model", param="swarm", code="invalid_swarm")

    def bound(name: str) -> Any:
        for source in (asked, ens):
            v = getattr(source, name, None) if source is not None else None
            if v is not None:
                return v
        return getattr(cfg, name)

    limits = Limits(round_timeout=bound("round_timeout_ms") / 1000,
                    min_successful=bound("min_successful"),
                    on_member_error=bound("on_member_error"),
                    max_concurrent=bound("max_concurrent"), rounds=bound("rounds"))
    raw = [(k, v) for k, v in request.raw_headers if k.lower() != HEADER]
    swarm = Swarm(request, rs, raw, client, strategy=strategy.name, label=plan.label,
                  members=chosen, judge=judge, limits=limits)
    return swarm, strategy


def _default_members(rs: RouterState, model: str | None, most: int) -> list[MemberSpec]:
    """Every distinct model the router can route (a header swarm's own model first),
    up to max_members."""
    served = rs.pool.models()
    if model:
        _routable(rs, model)
    names = ([model] if model else []) + [m for m in served if m != model]
    if not names:
        raise BadRequest("the swarm has no members: no worker lists a model; name them "
                         "(an ensemble, or the request's swarm.members)", param="swarm",
                         code="invalid_swarm")
    return [MemberSpec(model=m) for m in names[:most]]


def _routable(rs: RouterState, model: str) -> None:
    """A header swarm's own model is the client's: a name no worker serves (nor its alias
    or fallbacks) is the 404 the request without the header gets, not a swarm of the
    other models under that name."""
    first = rs.cfg.aliases.get(model, model)
    chain = [first, *rs.cfg.fallbacks.get(model, rs.cfg.fallbacks.get(first, []))]
    if not any(w.serves(m) for w in rs.pool.workers.values() for m in chain):
        known = sorted(rs.pool.models())
        raise ModelNotFound(f"the model {model!r} is not served by any worker; models "
                            f"available: {', '.join(known) if known else 'none'}",
                            param="model")


async def serve(request: LaneRequest, rs: RouterState, plan: Plan, body: bytes) -> Answer:
    swarm, strategy = prepare(request, rs, plan, body)
    log.info("swarm_started", strategy=strategy.name, name=plan.label,
             members=[m.model for m in swarm.members], judge=swarm.judge.model)
    if swarm.client.get("stream"):
        from eldric.roles.router.swarm.stream import streamed
        return await streamed(request, swarm, strategy)
    return await whole(request, swarm, strategy)


def reply_headers(request: LaneRequest, swarm: Swarm) -> list[tuple[bytes, bytes]]:
    return [*encode_headers({"X-Eldric-Swarm": swarm.strategy,
                             "X-Request-ID": request[keys.HOP].request_id})]


async def whole(request: LaneRequest, swarm: Swarm, strategy: Strategy) -> Answer:
    stats = swarm.rs.swarm_stats
    final_call: Result | None = None
    try:
        final = await strategy.run(swarm)
        if isinstance(final, Generate):
            final_call = await swarm_final(swarm, final)
            if final_call is None and final.fallback is not None:
                final = final.fallback  # it failed: the strategy's fallback is the answer
        result = final.result if isinstance(final, Chosen) else final_call
        assert result is not None
    except asyncio.CancelledError:
        stats.done(swarm, "cancelled", final_call)
        raise
    except EldricError as exc:
        stats.done(swarm, "failed", final_call)
        exc.headers = {"X-Eldric-Swarm": swarm.strategy, **exc.headers}
        raise
    except Exception:  # a bug: the middleware answers 500 in the API's shape
        stats.done(swarm, "failed", final_call)
        raise
    stats.done(swarm, "ok", final_call)
    rec = account.record(swarm, final, final_call)
    rec["usage"] = usage = account.usage_sum(rec_calls(swarm, final_call))
    out = {"id": f"chatcmpl-swarm-{request[keys.HOP].request_id}", "object": "chat.completion",
           "created": _now(), "model": swarm.label,
           "choices": [{"index": 0, "message": _message(result),
                        "finish_reason": result.finish_reason or "stop"}],
           "usage": usage, "eldric": rec}
    headers = [(b"Content-Type", b"application/json"), *reply_headers(request, swarm)]
    return request[keys.HOP].lane.reply(request, 200, headers, msgspec.json.encode(out))


def rec_calls(swarm: Swarm, final_call: Result | None) -> list[Result]:
    return [*swarm.calls, *([final_call] if final_call is not None else [])]


async def swarm_final(swarm: Swarm, final: Generate) -> Result | None:
    """The generated final answer, whole (a client that did not ask for a stream); None
    when it failed and the strategy gave a fallback."""
    with spans.member(swarm.request, final.ask, swarm.strategy) as span:
        r = await members.answer(swarm.request, swarm.rs, swarm.raw, swarm.client,
                                 final.ask, parent=span)
        spans.settle(span, r)
    if not r.ok:
        swarm.calls.append(r)
        if final.fallback is not None:
            return None
        raise swarm.failed(f"the {final.ask.stage} model failed")
    return r


def _message(r: Result) -> dict[str, Any]:
    """The answer's message as the client gets it: role, content, tool calls unchanged."""
    m = dict(r.message or {})
    m["role"] = "assistant"
    m.setdefault("content", None)
    return m


def _now() -> int:
    import time
    return int(time.time())


