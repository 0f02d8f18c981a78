"""One target's operation on its worker, followed to its end through the shared Failover.

The first attempt starts the operation (POST …/pull or …/install with the target's
op_id; a delete is one request). Every later attempt re-attaches: the worker's snapshot
(GET /api/v1/models/ops/{op_id}: a terminal one ends it at once), then its stream from
there (?follow=true). What makes an attempt fail, and whether another is worth it, is the
Failover's retryable rule: a dropped connection, a stream that ended without a terminal
line (UpstreamFailure "closed"), silence past --pull-idle-timeout ("timeout") or a 5xx
are tried again after a backoff; a 4xx (pull_unsupported, op_not_found: the worker
restarted and lost it) is the answer, and the target fails with it.

Attempts go on while the worker is in the registry and not offline (a killed worker goes
offline after --worker-timeout; one that stops cleanly at once), and while the operation
makes progress: none for --pull-stall-timeout fails it (and cancels it on the worker).
An operation never started at the worker (every try refused) gives up sooner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from urllib.parse import quote

import aiohttp
import msgspec

from eldric.bus import UpstreamState
from eldric.errors import UpstreamFailure
from eldric.roles.controller.jobs.calls import open_reply, read_whole
from eldric.stream.failover import WAIT, Failover
from eldric.wire.cluster import WorkerRecord
from eldric.wire.models import TERMINAL, InstallRequest, OpProgress, PullRequest

if TYPE_CHECKING:
    from eldric.roles.controller.jobs.engine import Jobs
    from eldric.roles.controller.jobs.table import StoredJob, StoredTarget

BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)  # between attempts; the last one repeats
UNSTARTED_ATTEMPTS = 8  # tries to start an operation before giving up (~17 s)
_line = msgspec.json.Decoder(OpProgress)


class Lost(Exception):
    """The target cannot be followed any more: why (its error), and eldric's code."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class Follow(Failover[WorkerRecord, OpProgress]):
    __slots__ = ("jobs", "job", "t", "seen", "progress_at", "quiet")

    def __init__(self, jobs: Jobs, job: StoredJob, t: StoredTarget) -> None:
        Failover.__init__(self, jobs.bus, "controller")
        self.jobs = jobs
        self.job = job
        self.t = t
        self.seen = False  # a line of this operation arrived (it runs at the worker)
        self.progress_at = time.monotonic()
        self.quiet = 0  # attempts in a row that brought no line

    # ------------------------------------------------------------ the Failover's hooks

    def _worker(self) -> WorkerRecord:
        w = self.jobs.registry.workers.get(self.t.worker_id)
        if w is None:
            raise Lost("the worker went away (it is no longer registered)", "worker_gone")
        if w.status == "offline":
            raise Lost("the worker went away (offline)", "worker_gone")
        return w

    def pick(self) -> WorkerRecord:
        return self._worker() if self.attempt == 0 else WAIT

    async def wait(self) -> WorkerRecord:
        if not self.seen and not self.t.started and self.attempts >= UNSTARTED_ATTEMPTS:
            raise Lost(f"the worker did not start the operation: {'; '.join(self.failures or [])}")
        await asyncio.sleep(BACKOFF_S[max(0, min(self.quiet, len(BACKOFF_S)) - 1)])
        self._check_stall()
        return self._worker()

    def name(self, w: WorkerRecord) -> str:
        return w.id or "?"

    def state(self, w: WorkerRecord) -> UpstreamState:
        return self.jobs.upstream(w)

    def relay(self, exc: UpstreamFailure) -> OpProgress:
        raise exc  # a failure that is the answer: the target fails with it

    def call(self, w: WorkerRecord) -> Awaitable[OpProgress]:
        return self._attempt(w)

    # ------------------------------------------------------------ an attempt

    async def _attempt(self, w: WorkerRecord) -> OpProgress:
        self.quiet += 1
        jobs, t = self.jobs, self.t
        who = self.name(w)
        if t.call == "delete":
            return await self._delete(w, who)
        if not t.started:
            body = self._start_body()
            resp = await open_reply(jobs.session, "POST", f"{w.url}/api/v1/models/{t.call}",
                                    who=who, key=jobs.cfg.cluster_key, body=body,
                                    timeout=jobs.stream_timeout)
            t.started = True  # from here on, the operation may run at the worker
            jobs.touch(self.job)
        else:
            ops = f"{w.url}/api/v1/models/ops/{t.op_id}"
            snap = await open_reply(jobs.session, "GET", ops, who=who, key=jobs.cfg.cluster_key,
                                    timeout=jobs.stream_timeout)
            last = self._line(await read_whole(snap, who), who)
            if last.state in TERMINAL:
                return last
            self._saw(last)  # what it did while nobody followed
            resp = await open_reply(jobs.session, "GET", ops + "?follow=true", who=who,
                                    key=jobs.cfg.cluster_key, timeout=jobs.stream_timeout)
        jobs.bus.mark(self.state(w), True)
        return await self._read(resp, who)

    def _start_body(self) -> PullRequest | InstallRequest:
        t = self.t
        if t.call == "pull":
            return PullRequest(**t.body, op_id=t.op_id)
        headers = self.jobs.download_headers() if t.keyed else {}
        return InstallRequest(**t.body, op_id=t.op_id, headers=headers)

    async def _read(self, resp: aiohttp.ClientResponse, who: str) -> OpProgress:
        try:
            async with resp:
                async for raw in resp.content:
                    if not raw.strip():
                        continue
                    p = self._line(raw, who)
                    self._saw(p)
                    if p.state in TERMINAL:
                        return p
                    self._check_stall()
        except TimeoutError:
            self._check_stall()
            raise UpstreamFailure.of(who, "timeout", 504, f"worker {who} sent no progress for "
                                     f"{self.jobs.cfg.pull_idle_timeout_ms} ms") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamFailure.of(who, "closed", 502,
                                     f"worker {who}'s progress stream broke off: "
                                     f"{type(exc).__name__}") from None
        raise UpstreamFailure.of(who, "closed", 502,
                                 f"worker {who}'s progress stream ended before the operation")

    def _saw(self, p: OpProgress) -> None:
        self.quiet = 0
        self.seen = True
        if self.jobs.progress(self.job, self.t, p):
            self.progress_at = time.monotonic()

    def _line(self, raw: bytes, who: str) -> OpProgress:
        try:
            return _line.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Lost(f"worker {who} sent progress eldric cannot read: {exc}",
                       "backend_error") from None

    def _check_stall(self) -> None:
        limit = self.jobs.cfg.pull_stall_timeout_ms
        if time.monotonic() - self.progress_at > limit / 1000:
            raise Lost(f"no progress for {limit} ms", "stalled")

    async def _delete(self, w: WorkerRecord, who: str) -> OpProgress:
        t = self.t
        try:
            resp = await open_reply(self.jobs.session, "DELETE",
                                    f"{w.url}/api/v1/models/{quote(t.body['model'], safe=':')}", who=who,
                                    key=self.jobs.cfg.cluster_key,
                                    timeout=self.jobs.stream_timeout)
            await read_whole(resp, who)
        except UpstreamFailure as exc:
            if exc.status != 404 or b"model_not_found" not in exc.error_body:
                raise
            return OpProgress(op_id=t.op_id or "", state="completed", model=t.body["model"],
                              message="it was not on this worker")
        return OpProgress(op_id=t.op_id or "", state="completed", model=t.body["model"],
                          message="deleted")
