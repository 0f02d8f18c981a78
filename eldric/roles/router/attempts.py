"""The router's attempts at one request: which worker next, and what its reply says.

The loop, the retryable rule, the "not here" relay and the 503's text are the shared
Failover's (eldric.stream.failover); the router adds its ranking before every attempt,
failing workers ranked last, the waiting room when every candidate is full, and the
X-Eldric-* headers that say how each reply, errors included, was routed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

import structlog
from aiohttp import web

from eldric import keys
from eldric.exchange import Answer, LaneRequest
from eldric.roles.router import routing_info
from eldric.roles.router.batch import as_batch, idle, wait_for_idle
from eldric.roles.router.context import RouteContext
from eldric.roles.router.health import passive_mark
from eldric.roles.router.pool import Worker
from eldric.roles.router.state import RouterState
from eldric.roles.router.thinking import put_first
from eldric.stream import UpstreamFailure, forward
from eldric.stream.failover import WAIT, Failover
from eldric.stream.headers import header_text
from eldric.stream.sse import Tap
from eldric.wire.priority import is_batch

log = structlog.get_logger("eldric.router")


class Full(Exception):
    """Every candidate is at its concurrency cap and the wait ran out."""


class Attempts(Failover[Worker, Answer]):
    """Up to max_attempts workers for each model of the request's chain (among()), ranked
    again before each attempt: the last failure may have changed who is best."""

    __slots__ = ("request", "rs", "model", "strategy", "candidates", "body", "skip", "live",
                 "reason", "tap", "ctx", "decided_by", "batch")
    # a swarm member's attempts (eldric.roles.router.swarm.members): no session, no AI
    member = False

    def __init__(self, request: LaneRequest, rs: RouterState, model: str | None) -> None:
        app = request.app
        Failover.__init__(self, app[keys.BUS], app[keys.ROLE].name, room=rs.pool,
                          hop=request[keys.HOP])
        self.request = request
        self.rs = rs
        self.model = model
        self.strategy = rs.strategy
        self.candidates: list[Worker] = []
        self.body = b""
        self.skip: set[str] | None = None  # workers tried for this model (made when needed)
        self.live: list[Worker] = []  # what pick() found full, for wait()
        self.reason = ""  # why the worker about to be tried was chosen
        self.tap: Tap | None = None  # reads a streamed reply (the /v1/responses store's)
        self.ctx: RouteContext | None = None  # what the scorers know of the request
        self.decided_by = ""  # X-Eldric-Strategy of the worker about to be tried
        # X-Eldric-Priority: batch (eldric.wire.priority): only idle capacity, see pick()
        self.batch = is_batch(request.raw_headers)

    def among(self, candidates: list[Worker], body: bytes, ctx: RouteContext) -> None:
        """The next model's workers, the body naming that model, and what the scorers
        worked out for it (ctx)."""
        self.candidates, self.body, self.skip, self.ctx = candidates, body, None, ctx
        self.strategy = self.rs.strategy

    def headers(self) -> dict[str, str]:
        """The routing headers of a reply the router made itself (an error, a relay)."""
        strategy = self.rs.strategy.name if self.rs.strategy else ""
        out = {"X-Eldric-Strategy": strategy}
        if self.model is not None:
            out["X-Eldric-Model"] = header_text(self.model)
        if self.last is not None:
            out["X-Eldric-Worker"] = self.last.id
        if self.ctx is not None and self.ctx.reply_headers:  # e.g. the theme that narrowed
            out.update(self.ctx.reply_headers)
        return out

    def pick(self) -> Worker | None:
        skip = self.skip
        live = [w for w in self.candidates
                if w.state.healthy and (skip is None or w.id not in skip)]
        if not live:
            return None
        ctx = self.ctx
        strategy = self.strategy
        ranked, reason = strategy.rank(live, ctx)  # type: ignore[union-attr]
        ranked, suspects = _suspects_last(ranked)
        if suspects and ranked[0] not in suspects:
            reason = f"{reason}; {len(suspects)} failing worker(s) ranked last"
        cap = self.rs.cfg.max_concurrency
        self.decided_by = strategy.name  # type: ignore[union-attr]
        if ctx is not None and ctx.prefer is not None and not any(
                w.id == ctx.prefer for w in suspects):
            ranked, reason, first = put_first(ranked, ctx, cap, reason)
            if first and ctx.decided_by:
                self.decided_by = ctx.decided_by
        if ctx is not None and ctx.note:
            reason = f"{reason}; {ctx.note}"
        self.reason = reason
        self.live = live
        if self.batch:
            w = idle(self.rs, ranked)
            if w is not None:
                self.reason = "batch: idle capacity"
                return w
            return WAIT  # type: ignore[no-any-return]
        for w in ranked:
            if w.has_room(cap):
                return w
        return WAIT  # type: ignore[no-any-return]

    async def wait(self) -> Worker:
        if self.batch:
            worker = await wait_for_idle(self.rs, self.live, self.ctx)
            self.reason = "batch: idle capacity; waited"
            self.decided_by = self.strategy.name  # type: ignore[union-attr]
            return worker
        worker = await _wait_for_room(self.rs, self.live, self.ctx)
        self.reason = f"{self.reason}; waited for a free slot"
        self.decided_by = self.strategy.name  # type: ignore[union-attr]
        return worker

    def sent(self, worker: Worker) -> None:
        """Tell the strategy and the scorers where the request goes (what they learn)."""
        ctx = self.ctx
        if ctx is not None:
            self.strategy.chosen(worker, ctx)  # type: ignore[union-attr]
            self.rs.thinking.chosen(worker, ctx, self.member)

    def call(self, worker: Worker) -> Awaitable[Answer]:
        self.sent(worker)
        strategy = self.decided_by
        reason = self.reason
        if self.attempt > 1 and self.failures:
            # the failure text may be an upstream's own message: one line, bounded
            reason = f"{reason}; attempt {self.attempt} after {header_text(self.failures[-1])}"
        self.bus.metrics.selections.labels(self.role, strategy, worker.id).inc()
        headers = {"X-Eldric-Worker": worker.id, "X-Eldric-Strategy": strategy,
                   "X-Eldric-Route-Reason": reason}
        if self.model is not None:
            headers["X-Eldric-Model"] = header_text(self.model)
        if self.ctx is not None and self.ctx.reply_headers:
            headers.update(self.ctx.reply_headers)
        request = self.request
        info = None
        if routing_info.asked(request.raw_headers) and self.tap is None and (
                self.ctx is None or not (self.ctx.document() or {}).get("stream")):
            info = routing_info.RoutingInfo(request.path, self.model, worker.id, worker.url,
                                            strategy, reason)
        sent = forward(request, worker.target, request.path, self.body,
                       timeouts=self.rs.timeouts, reply_headers=headers, tap=self.tap,
                       translate=info, span=self.span)
        return as_batch(self.rs, worker, sent) if self.batch else sent

    def judge(self, worker: Worker, exc: UpstreamFailure) -> None:
        if self.skip is None:
            self.skip = {worker.id}
        else:
            self.skip.add(worker.id)
        passive_mark(self.request.app, worker, exc)
        if self.ctx is not None:  # it does not hold the prompt the strategy taught it
            self.strategy.failed(worker, self.ctx)  # type: ignore[union-attr]
        log.warning("attempt_failed", worker=worker.id, model=self.model, kind=exc.kind,
                    status=exc.status, attempt=self.attempt)

    def relay(self, exc: UpstreamFailure) -> web.StreamResponse:
        resp = exc.response()
        resp.headers.update(self.headers())
        return resp


def _suspects_last(ranked: list[Worker]) -> tuple[list[Worker], list[Worker]]:
    """Workers that failed max_failures times in a row go after the others for a while
    (see passive_mark): still routable, tried only when the others cannot answer."""
    now = time.monotonic()
    suspects = [w for w in ranked if w.suspect_until > now]
    if not suspects:
        return ranked, suspects
    return [w for w in ranked if w.suspect_until <= now] + suspects, suspects


async def _wait_for_room(rs: RouterState, live: list[Worker],
                         ctx: RouteContext | None) -> Worker:
    """Wait (bounded in time and in how many may wait) for a candidate with a free slot."""
    pool = rs.pool
    if pool.interactive_waiting() >= rs.cfg.max_queue:
        raise Full()
    deadline = time.monotonic() + rs.cfg.queue_timeout_ms / 1000
    cap = rs.cfg.max_concurrency

    def find() -> Worker | None:
        ranked, _ = rs.strategy.rank(  # type: ignore[union-attr]
            [w for w in live if w.state.healthy] or live, ctx)
        return next((w for w in ranked if w.has_room(cap)), None)

    pool.waiting += 1
    try:
        return await pool.wait_for(find, deadline)
    except TimeoutError:
        raise Full() from None
    finally:
        pool.waiting -= 1
