"""The router's batch-priority lane (X-Eldric-Priority: batch, eldric.wire.priority).

A batch request takes a worker only when interactive traffic leaves it idle: no
interactive request is waiting for room anywhere in the pool, the worker has room under
its cap (reported max_concurrency, else --max-concurrency), and it holds fewer than
--batch-slots batch requests; with no cap known at all, "idle" means no interactive
request in flight on it. Since a batch request is admitted only into a free slot and only
while no interactive one waits, an interactive request arriving later finds at most
batch_slots batch requests ahead of it on a worker (one by default): it is delayed by at
most that many requests' time, never by a queue of them. Batch waiters queue behind every
interactive waiter (they re-check "idle" on each wake-up, and idle is false while any
interactive request waits), up to --batch-wait; then Deferred, the 503 batch_deferred
with Retry-After that the batch runner takes as "come back later". Nothing is sent to a
worker, so a deferral is never a worker's failure.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from eldric.exchange import Answer
from eldric.roles.router.context import RouteContext
from eldric.roles.router.pool import Worker, WorkerPool

if TYPE_CHECKING:
    from eldric.roles.router.state import RouterState


class Deferred(Exception):
    """A batch-priority request found no idle capacity within batch_wait_ms."""


class BatchStats:
    def __init__(self, registry: Any, pool: WorkerPool) -> None:
        self.admitted = Counter("eldric_router_batch_admitted",
                                "Batch-priority requests given a worker's idle capacity",
                                registry=registry)
        self.deferred = Counter("eldric_router_batch_deferred",
                                "Batch-priority requests answered 503 batch_deferred",
                                registry=registry)
        inflight = Gauge("eldric_router_batch_in_flight",
                         "Batch-priority requests in flight on workers", registry=registry)
        inflight.set_function(lambda: sum(w.batch_active for w in pool.workers.values()))


async def as_batch(rs: RouterState, worker: Worker, sent: Awaitable[Answer]) -> Answer:
    """A batch request holds one of the worker's batch slots until its reply is done."""
    worker.batch_active += 1
    if rs.batch is not None:
        rs.batch.admitted.inc()
    try:
        return await sent
    finally:
        worker.batch_active -= 1


def idle(rs: RouterState, ranked: list[Worker]) -> Worker | None:
    """The best worker interactive traffic leaves idle; none while any interactive
    request waits for room (they always go first)."""
    if rs.pool.interactive_waiting():
        return None
    for w in ranked:
        if w.idle_for_batch(rs.cfg.max_concurrency, rs.cfg.batch_slots):
            return w
    return None


async def wait_for_idle(rs: RouterState, live: list[Worker],
                        ctx: RouteContext | None) -> Worker:
    """Wait up to batch_wait_ms for idle capacity; then Deferred. Counted in pool.waiting
    (so a request's end notifies the room) and in pool.batch_waiting (so interactive
    waiters, waiting - batch_waiting, are told apart)."""
    pool = rs.pool
    deadline = time.monotonic() + rs.cfg.batch_wait_ms / 1000

    def find() -> Worker | None:
        ranked, _ = rs.strategy.rank(  # type: ignore[union-attr]
            [w for w in live if w.state.healthy] or live, ctx)
        return idle(rs, ranked)

    pool.waiting += 1
    pool.batch_waiting += 1
    try:
        return await pool.wait_for(find, deadline)
    except TimeoutError:
        raise Deferred() from None
    finally:
        pool.waiting -= 1
        pool.batch_waiting -= 1
