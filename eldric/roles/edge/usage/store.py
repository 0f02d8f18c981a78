"""The Recorder: what the request path hands each Record to, written in batches.

add() never blocks or awaits: the Record is folded into its bucket (client × model ×
backend × UTC day) in memory, and one transaction every flush interval adds the buckets
to the store (store_sqlite.py under --data-dir, store_redis.py in farm mode). The memory
is bounded: at most `bound` buckets wait (folding into a waiting bucket costs nothing
more); a Record that would need one more while the store is down is dropped and counted
(eldric_edge_usage_dropped_total, and "dropped" in /api/v1/usage, written to the store
once it is back). A batch the store refused is kept as it was and tried again first, so
a retry adds it once (the Redis store remembers batch ids). The last flush runs at
shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import structlog
from prometheus_client import Counter

from eldric.roles.edge.usage.counts import Counts, Key, day_of, key_of
from eldric.roles.edge.usage.record import Record
from eldric.tasks import spawn

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from eldric.roles.edge.usage.requestlog import RequestLog

log = structlog.get_logger("eldric.edge.usage")


@dataclass
class Batch:
    """What one flush adds: summed buckets, and the Records dropped per day."""

    id: str = field(default_factory=lambda: secrets.token_hex(8))
    buckets: dict[Key, Counts] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.buckets)


class UsageStore(Protocol):
    """Where the buckets are kept (SqliteUsage, RedisUsage)."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def add(self, batch: Batch) -> None:
        """Add the batch in one transaction, or raise having added nothing. The same
        batch (its id) given again after a failure is added once."""
    async def buckets(self, first: str, last: str, client: str | None,
                      model: str | None) -> list[tuple[Key, Counts]]:
        """The buckets of days first..last (inclusive), of that client / model if given."""
    async def dropped(self, first: str, last: str) -> int: ...


class Recorder:
    def __init__(self, store: UsageStore, *, interval_ms: int, bound: int,
                 registry: CollectorRegistry | None = None,
                 requests: RequestLog | None = None) -> None:
        self.store = store
        self.interval = interval_ms / 1000
        self.bound = bound
        self.requests = requests  # the request log, when on
        self.pending = Batch()
        self.unsent: Batch | None = None  # a batch the store refused: sent again first
        self.dropped_total = 0
        self.error: str | None = None  # the store's last failure, while it lasts
        self._task: asyncio.Task[None] | None = None
        # held by a flush and by a reader of store + waiting: nothing counted twice
        self.lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._metric = Counter("eldric_edge_usage_dropped", "Usage records dropped: the "
                               "buffer was full while the store could not be written",
                               registry=registry) if registry is not None else None

    # ------------------------------------------------------------ the request path

    def add(self, record: Record, request_body: bytes | None = None,
            reply_body: bytes | None = None) -> None:
        """Count one request. Never blocks, never raises, never grows past the bound.
        The bodies are for the request log, kept only with --request-log-bodies."""
        if self.requests is not None:
            self.requests.add(record, request_body, reply_body)
        key = key_of(record)
        counts = self.pending.buckets.get(key)
        if counts is None:
            if len(self.pending) + len(self.unsent or ()) >= self.bound:
                self._drop(key[0])
                return
            counts = self.pending.buckets[key] = Counts()
        counts.count(record)

    def _drop(self, day: str) -> None:
        self.pending.dropped[day] = self.pending.dropped.get(day, 0) + 1
        self.dropped_total += 1
        if self._metric is not None:
            self._metric.inc()

    # ------------------------------------------------------------ writing

    async def start(self) -> None:
        await self.store.open()
        if self.requests is not None:
            await self.requests.open()
        self._task = spawn(self._loop(), name="usage-flush")

    async def stop(self) -> None:
        # Not cancelled: a flush cut off at its await would leave its batch "unsent"
        # although the store's thread went on and wrote it, and the last flush would
        # then write it twice. The loop ends between flushes.
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()  # what is left; a store still down keeps it: logged as lost
        if self.pending or self.unsent:
            log.error("usage_lost_at_shutdown", buckets=len(self.pending) + len(self.unsent or ()),
                      error=self.error)
        if self.requests is not None:
            await self.requests.close()
        await self.store.close()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            try:
                await self.flush()
            except Exception as exc:  # the request log's, say: the loop goes on
                log.error("usage_flush_failed", error=repr(exc))

    async def flush(self) -> bool:
        """Write what waits; True when the store took all of it."""
        if self.requests is not None:
            await self.requests.flush()
        async with self.lock:
            if self.unsent is None:
                if not self.pending.buckets and not self.pending.dropped:
                    return True
                self.unsent, self.pending = self.pending, Batch()
            try:
                await self.store.add(self.unsent)
            except Exception as exc:  # any failure of the store: kept, tried again
                self._failed(exc)
                return False
            self.unsent = None
        if self.error is not None:  # what the outage held waits in pending: next flush
            log.info("usage_store_back", error_was=self.error)
            self.error = None
        return True

    def _failed(self, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if self.error is None:
            log.error("usage_store_unwritable", error=error,
                      kept="up to the buffer's bound; beyond it drops are counted")
        self.error = error

    # ------------------------------------------------------------ reading

    @property
    def wants_bodies(self) -> bool:
        return self.requests is not None and self.requests.bodies

    def waiting(self, first: str, last: str, client: str | None,
                model: str | None) -> list[tuple[Key, Counts]]:
        """What is counted but not written yet (the API adds it: a reader sees its last
        request at once, and what an outage holds)."""
        out = []
        for batch in (self.unsent, self.pending):
            if batch is None:
                continue
            for key, counts in batch.buckets.items():
                if (first <= key[0] <= last and (client is None or key[1] == client)
                        and (model is None or key[2] == model)):
                    out.append((key, counts))
        return out

    def waiting_dropped(self, first: str, last: str) -> int:
        return sum(n for batch in (self.unsent, self.pending) if batch is not None
                   for day, n in batch.dropped.items() if first <= day <= last)


def today() -> str:
    return day_of(time.time())
