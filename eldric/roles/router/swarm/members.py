"""One member's call, routed like any request: the router's own route() (aliases,
fallbacks, strategies, health, failover through eldric.stream.failover, the waiting room
when every worker is full), with attempts that fetch the reply for the swarm to read
instead of relaying it to the client. Never an HTTP call to the router itself."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from eldric import trace
from eldric.errors import EldricError, UpstreamFailure
from eldric.exchange import LaneRequest, RawPairs
from eldric.roles.router.attempts import Attempts
from eldric.roles.router.pool import Worker
from eldric.roles.router.state import RouterState
from eldric.roles.router.swarm.strategy import Ask, Result
from eldric.stream.fetch import Fetched, fetch

# The client's request fields a member does not get: the swarm's own, and what eldric
# sets per call (its stream flag, its model).
_NOT_FOR_MEMBERS = ("stream", "stream_options", "n", "model")


class MemberAttempts(Attempts):
    """Attempts whose call fetches the reply (eldric.stream.fetch) and whose "answer"
    for a failure that is no retry is the failure itself, for the swarm to record."""

    __slots__ = ("raw", "seen")
    member = True  # one of several calls of one request: no session, no AI decision each

    def __init__(self, request: LaneRequest, rs: RouterState, model: str | None,
                 raw: RawPairs, seen: Callable[[str], None] | None = None,
                 parent: trace.SpanLike = trace.NULL) -> None:
        Attempts.__init__(self, request, rs, model)
        if parent is not trace.NULL:  # traced: the attempts go under the member's span
            self.hop = trace.Under(parent)
        self.raw = raw  # the client's headers without the swarm's own
        self.seen = seen  # told each worker tried: a call cut short still names its worker

    def call(self, worker: Worker) -> Awaitable[Fetched]:  # type: ignore[override]
        self.sent(worker)
        self.bus.metrics.selections.labels(self.role, self.decided_by, worker.id).inc()
        if self.seen is not None:
            self.seen(worker.id)
        return fetch(self.request, worker.target, self.request.path,
                     self.body, timeouts=self.rs.timeouts, raw_headers=self.raw,
                     span=self.span)

    def relay(self, exc: UpstreamFailure) -> UpstreamFailure:  # type: ignore[override]
        return exc


def member_body(client: dict[str, Any], ask: Ask, stream: bool) -> bytes:
    """The body one member is sent: the client's request (tools, response_format, stop...)
    with the ask's messages, the member's model, sampling and system prompt."""
    body = {k: v for k, v in client.items() if k not in _NOT_FOR_MEMBERS}
    m = ask.member
    messages = ask.messages
    if m.system is not None:
        messages = [{"role": "system", "content": m.system},
                    *[x for x in messages if x.get("role") != "system"]]
    body["model"] = m.model
    body["messages"] = messages
    if m.temperature is not None:
        body["temperature"] = m.temperature
    if m.max_tokens is not None:
        body["max_tokens"] = m.max_tokens
    body.update(ask.extra)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return msgspec.json.encode(body)


class Reached:
    """Where a member's call went: its worker, and the reply to read (or why none)."""

    __slots__ = ("worker", "reply", "error")

    def __init__(self, worker: str | None, reply: Fetched | None, error: str | None) -> None:
        self.worker = worker
        self.reply = reply
        self.error = error


async def reach(request: LaneRequest, rs: RouterState, raw: RawPairs, body: bytes,
                model: str, seen: Callable[[str], None] | None = None,
                parent: trace.SpanLike = trace.NULL) -> Reached:
    """Route one member's call (imported here, not at the top: handlers imports the
    swarm's entry point)."""
    from eldric.roles.router.handlers import route
    tries: list[MemberAttempts] = []

    def attempts(request: LaneRequest, rs: RouterState, model: str | None) -> MemberAttempts:
        t = MemberAttempts(request, rs, model, raw, seen, parent)
        tries.append(t)
        return t

    try:
        got: Any = await route(request, body, model, attempts=attempts)
    except EldricError as exc:
        worker = tries[0].last.id if tries and tries[0].last is not None else None
        return Reached(worker, None, exc.message)
    worker = tries[0].last.id if tries and tries[0].last is not None else None
    if isinstance(got, UpstreamFailure):
        return Reached(worker, None, f"{got.upstream}: HTTP {got.status}: {got.message}")
    return Reached(worker, got, None)


async def answer(request: LaneRequest, rs: RouterState, raw: RawPairs,
                 client: dict[str, Any], ask: Ask,
                 seen: Callable[[str], None] | None = None,
                 parent: trace.SpanLike = trace.NULL) -> Result:
    """One member's whole answer (not streamed), as a Result; never raises for the
    member's failure (cancellation passes through)."""
    t0 = time.perf_counter()
    reached = await reach(request, rs, raw, member_body(client, ask, stream=False),
                          ask.member.model, seen, parent)
    ms = lambda: (time.perf_counter() - t0) * 1000  # noqa: E731
    if reached.reply is None:
        return Result(ask, ok=False, worker=reached.worker, latency_ms=ms(), outcome="error",
                      error=reached.error)
    try:
        data = await reached.reply.read_all()
    except UpstreamFailure as exc:
        return Result(ask, ok=False, worker=reached.worker, latency_ms=ms(), outcome="error",
                      error=exc.message)
    finally:
        reached.reply.close()
    try:
        reply = msgspec.json.decode(data)
        choice = reply["choices"][0]
        message = choice["message"]
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
    except Exception as exc:
        return Result(ask, ok=False, worker=reached.worker, latency_ms=ms(), outcome="error",
                      error=f"{reached.worker}: not a chat completion ({type(exc).__name__})")
    usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else None
    return Result(ask, ok=True, message=message, finish_reason=choice.get("finish_reason"),
                  usage=usage, worker=reached.worker, latency_ms=ms())
