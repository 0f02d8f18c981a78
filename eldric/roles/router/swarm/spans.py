"""The swarm's child spans (eldric.trace): one per member call, `eldric.swarm.member`,
or `eldric.swarm.judge` for the judge's / synthesis call (its Ask's index is -1), with
the model, the stage, then the worker, outcome and tokens; the call's attempts hang under
it. Off (the request is not traced): NULL, and not even the attributes are built."""

from __future__ import annotations

from eldric import keys, trace
from eldric.exchange import LaneRequest
from eldric.roles.router.swarm.strategy import Ask, Result


def member(request: LaneRequest, ask: Ask, strategy: str) -> trace.SpanLike:
    hop = request[keys.HOP]
    if hop.span is None:
        return trace.NULL
    judge = ask.index < 0
    return trace.child(hop, "eldric.swarm.judge" if judge else "eldric.swarm.member",
                       {"gen_ai.request.model": ask.member.model,
                        "eldric.swarm.strategy": strategy, "eldric.swarm.stage": ask.stage,
                        "eldric.swarm.member": ask.index})


def settle(span: trace.SpanLike, r: Result) -> None:
    """What the call got: its worker, outcome, tokens; ERROR when it failed."""
    if span is trace.NULL:
        return
    attrs: dict[str, object] = {"eldric.outcome": r.outcome}
    if r.worker:
        attrs["eldric.worker"] = r.worker
    usage = r.usage or {}
    for src, dst in (("prompt_tokens", "gen_ai.usage.input_tokens"),
                     ("completion_tokens", "gen_ai.usage.output_tokens")):
        if isinstance(usage.get(src), int):
            attrs[dst] = usage[src]
    span.set_attributes(attrs)
    if not r.ok:
        span.fail(r.error or r.outcome)
