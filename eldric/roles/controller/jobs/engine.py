"""The controller's model jobs: in memory for serving, SQLite for surviving a restart.

A job is one operation (pull, install, delete) on each of its targets, run side by side
but at most --pull-concurrency at once over every job; a target's failure never stops
the others. Each target is followed to its end by a Follow (follow.py), which keeps the
job when a connection drops. A job's state is derived from its targets (meter.derive()).

Writes: a job made, a target's state changed, a cancel or a retry are written through;
bytes only mark the job dirty, written every --flush-interval (as heartbeats are), so a
fleet pulling does not write a row per progress line. A controller stopping leaves its
targets as they were: the next one re-attaches to them (or fails those whose worker went
away, with that reason); none is left "pulling" forever.

Changes are published to the event stream's subscribers (events.py) at most every
PUBLISH_S per job, so a dashboard sees the bars move without a message per
line of every worker.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec
import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars

from eldric import log as eldric_log
from eldric.bus import Bus, UpstreamState
from eldric.errors import BadRequest, EldricError, NotFound, UpstreamFailure
from eldric.roles.controller.config import ControllerConfig
from eldric.roles.controller.jobs import meter
from eldric.roles.controller.jobs.calls import auth, open_reply, read_whole
from eldric.roles.controller.jobs.events import Subscriber, publish
from eldric.roles.controller.jobs.meter import derive
from eldric.roles.controller.jobs.follow import Follow, Lost
from eldric.roles.controller.jobs.table import Call, JobTable, StoredJob, StoredTarget
from eldric.roles.controller.registry import Registry
from eldric.tasks import cancel, every, spawn
from eldric.wire.cluster import WorkerRecord
from eldric.wire.models import TERMINAL, JobKind, OpProgress, Source

log = structlog.get_logger("eldric.controller.jobs")

PUBLISH_S = 0.2
CANCEL_TIMEOUT_S = 5.0


class Jobs:
    def __init__(self, cfg: ControllerConfig, registry: Registry, table: JobTable) -> None:
        self.cfg = cfg
        self.registry = registry
        self.table = table
        self.jobs: dict[str, StoredJob] = {}  # in creation order
        self.meters: dict[tuple[str, str], meter.Meter] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.states: dict[str, UpstreamState] = {}  # per worker, for the Failover
        self.subscribers: set[Subscriber] = set()
        self._dirty: set[str] = set()  # to write
        self._changed: set[str] = set()  # to publish
        self._flush_every = max(1, round(cfg.flush_interval_ms / 1000 / PUBLISH_S))
        self._ticks = 0
        self._loop: asyncio.Task[None] | None = None
        self.bus: Bus = None  # type: ignore[assignment]  # set by start()
        self.session: aiohttp.ClientSession = None  # type: ignore[assignment]
        self.self_url = ""  # the controller's own URL (its registry's downloads)
        self.stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=cfg.connect_timeout_ms / 1000,
            sock_read=cfg.pull_idle_timeout_ms / 1000)
        self.slots: asyncio.Semaphore | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, bus: Bus, session: aiohttp.ClientSession, self_url: str) -> None:
        """Load the stored jobs and carry on with those that were running."""
        self.bus, self.session, self.self_url = bus, session, self_url
        self.slots = asyncio.Semaphore(self.cfg.pull_concurrency)
        for job in await self.table.load():
            self.jobs[job.id] = job
        resumed = 0
        for job in list(self.jobs.values()):
            if job.state != "running":
                continue
            pending = [t for t in job.targets if t.state not in TERMINAL]
            for t in pending:
                self._run(job, t)
            resumed += len(pending)
            if not pending:  # its last target ended just before the stop: end the job
                await self._ended(job)
        self._prune()
        self._loop = spawn(every(PUBLISH_S, self._tick), name="controller-jobs")
        log.info("jobs_loaded", jobs=len(self.jobs), resumed_targets=resumed)

    async def stop(self) -> None:
        """Stop following (the targets stay as they are, for the next start), write."""
        await cancel(self._loop)
        for task in list(self.tasks.values()):
            await cancel(task)
        await self.flush()
        self.end_streams()

    def end_streams(self) -> None:
        """End every event stream (the controller is stopping: none may hold the drain)."""
        for sub in list(self.subscribers):
            sub.end()

    async def _tick(self) -> None:
        self._publish()
        self._ticks += 1
        if self._ticks % self._flush_every == 0:
            try:
                await self.flush()
            except Exception as exc:  # the disk may fail; the jobs go on
                log.error("jobs_flush_failed", error=repr(exc))

    async def flush(self) -> None:
        if not self._dirty:
            return
        ids, self._dirty = self._dirty, set()
        try:
            await self.table.save([self.jobs[i] for i in ids if i in self.jobs])
        except BaseException:
            self._dirty |= ids
            raise

    def touch(self, job: StoredJob) -> None:
        """The job changed: write it with the next flush, publish it with the next tick."""
        self._dirty.add(job.id)
        self._changed.add(job.id)

    async def _write(self, job: StoredJob) -> None:
        """Write the job now (a change a restart must not lose)."""
        self._dirty.discard(job.id)
        self._changed.add(job.id)
        await self.table.save([job])

    # ------------------------------------------------------------------ events

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _publish(self) -> None:
        if self._changed:
            ids, self._changed = self._changed, set()
            publish(self.subscribers, self.jobs, ids)

    # ------------------------------------------------------------------ views

    def listing(self) -> list[StoredJob]:
        return sorted(self.jobs.values(), key=lambda j: j.created_at, reverse=True)

    def get(self, job_id: str) -> StoredJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}", code="job_not_found")
        return job

    def upstream(self, w: WorkerRecord) -> UpstreamState:
        """The worker as an upstream of the jobs' Failovers: its own state, not one of
        the bus's (the controller's /health is not about the workers it drives)."""
        wid = w.id or "?"
        up = self.states.get(wid)
        if up is None or up.url != w.url:
            up = self.states[wid] = UpstreamState(id=wid, url=w.url, role="controller")
        return up

    def download_headers(self) -> dict[str, str]:
        """What a worker sends with a download from the registry or another worker."""
        return auth(self.cfg.cluster_key)

    # ------------------------------------------------------------------ making jobs

    async def create(self, kind: JobKind, model: str, chosen: list[tuple[str, str | None]],
                     call: Call, body: Callable[[str], dict[str, Any]], *,
                     source: Source | None = None, keyed: bool = False) -> StoredJob:
        """A job on every chosen worker without a reason to skip it; 400 no_targets when
        none is left (the reasons in the message)."""
        if not any(why is None for _, why in chosen):
            reasons = "; ".join(f"{wid}: {why}" for wid, why in chosen) or "no workers"
            raise BadRequest(f"no worker can take this job ({reasons})", code="no_targets")
        now = time.time()
        job = StoredJob(id=f"job-{secrets.token_hex(6)}", kind=kind, model=model,
                        state="running", created_at=now, source=source)
        for wid, why in chosen:
            if why is None:
                t = StoredTarget(worker_id=wid, call=call, body=body(wid), keyed=keyed)
                t.op_id = f"{job.id}-{wid}-0"
            else:
                t = StoredTarget(worker_id=wid, state="skipped", error=why,
                                 finished_at=now, call=call)
            job.targets.append(t)
        self.jobs[job.id] = job
        await self._write(job)
        for t in job.targets:
            if t.state == "queued":
                self._run(job, t)
        log.info("job_started", job=job.id, kind=kind, model=model,
                 targets=[t.worker_id for t in job.targets if t.state == "queued"],
                 skipped=[t.worker_id for t in job.targets if t.state == "skipped"])
        self._prune()
        return job

    def _run(self, job: StoredJob, t: StoredTarget) -> None:
        key = (job.id, t.worker_id)
        self.meters[key] = meter.Meter()
        self.tasks[key] = spawn(self._drive(job, t), name=f"job:{job.id}:{t.worker_id}")

    async def _drive(self, job: StoredJob, t: StoredTarget) -> None:
        key = (job.id, t.worker_id)
        # The task outlives the request that made it: its log lines carry the job, not
        # that request's id.
        clear_contextvars()
        eldric_log.unbind_request()
        bind_contextvars(job=job.id, worker=t.worker_id)
        try:
            assert self.slots is not None
            async with self.slots:
                if t.state in TERMINAL:  # cancelled while it waited for a slot
                    return
                t.started_at = t.started_at or time.time()
                self.touch(job)
                try:
                    last = await Follow(self, job, t).run()
                except UpstreamFailure as exc:
                    self._end(job, t, "failed", _op_error(exc), _code_of(exc))
                except Lost as exc:
                    if exc.code == "stalled":
                        await self._cancel_op(t)
                    self._end(job, t, "failed", exc.reason, exc.code)
                else:
                    assert last is not None  # pick() never runs out: it raises Lost
                    self.progress(job, t, last)
                    if t.state not in TERMINAL:  # pragma: no cover - run() returns terminals
                        self._end(job, t, "failed", "the operation ended without a result")
            await self._ended(job)
        finally:
            if self.tasks.get(key) is asyncio.current_task():
                del self.tasks[key]

    def progress(self, job: StoredJob, t: StoredTarget, p: OpProgress) -> bool:
        """Apply one line of the worker's progress; whether it was progress (bytes or
        state moved: what the stall timeout counts)."""
        moved = p.state != t.state or p.completed_bytes != t.completed_bytes \
            or p.message != t.message
        if p.state in TERMINAL and t.state not in TERMINAL:
            t.finished_at = time.time()
        t.state = p.state
        t.completed_bytes = p.completed_bytes
        t.total_bytes = p.total_bytes
        t.message = p.message
        t.error = p.error if p.state == "failed" else None
        t.code = p.code if p.state == "failed" else None
        if p.state == "completed" and t.total_bytes:
            t.completed_bytes = max(t.completed_bytes, t.total_bytes)
        meter.update(t, self.meters.setdefault((job.id, t.worker_id), meter.Meter()),
                     time.monotonic())
        self.touch(job)
        return moved

    def _end(self, job: StoredJob, t: StoredTarget, state: str, error: str | None,
             code: str | None = None) -> None:
        t.state = state  # type: ignore[assignment]
        t.error = error
        t.code = code
        t.finished_at = time.time()
        meter.update(t, meter.Meter(), time.monotonic())
        log.info("job_target_ended", job=job.id, worker=t.worker_id, state=state, error=error,
                 code=code)
        self.touch(job)

    async def _ended(self, job: StoredJob) -> None:
        """A target finished: the job's state follows; written now."""
        state = derive(job.targets, job.cancelled)
        if state != "running" and job.state == "running":
            job.finished_at = time.time()
            log.info("job_finished", job=job.id, state=state)
        job.state = state
        self._prune()  # before anyone sees this job finished and the history one too long
        if job.id in self.jobs:  # (not itself forgotten: the oldest, beyond the history)
            await self._write(job)

    def _prune(self) -> None:
        """Forget the oldest finished jobs beyond --job-history (in the background)."""
        done = [j for j in self.jobs.values() if j.state != "running"]
        extra = len(done) - self.cfg.job_history
        if extra <= 0:
            return
        old = sorted(done, key=lambda j: j.created_at)[:extra]
        for j in old:
            del self.jobs[j.id]
            self._dirty.discard(j.id)
            self._changed.add(j.id)  # published as removed
        spawn(self.table.delete([j.id for j in old]), name="controller-jobs-prune")

    # ------------------------------------------------------------------ cancel, retry

    async def cancel_job(self, job_id: str) -> StoredJob:
        job = self.get(job_id)
        if job.state != "running":
            return job
        job.cancelled = True
        pending = [t for t in job.targets if t.state not in TERMINAL]
        # Told to the workers where the operation may be running: sent, or being sent.
        await asyncio.gather(*(self._cancel_op(t) for t in pending
                               if t.started or t.started_at is not None))
        for t in pending:
            task = self.tasks.get((job.id, t.worker_id))
            if t.state not in TERMINAL:  # the worker's own "cancelled" line may be in
                await cancel(task)
                if t.state not in TERMINAL:
                    self._end(job, t, "cancelled", None)
        await self._ended(job)
        return job

    async def _cancel_op(self, t: StoredTarget) -> None:
        """Ask the worker to stop the operation; best effort (it may be gone)."""
        w = self.registry.workers.get(t.worker_id)
        if w is None or t.op_id is None or t.call == "delete":
            return
        try:
            resp = await open_reply(self.session, "DELETE",
                                    f"{w.url}/api/v1/models/ops/{t.op_id}", who=t.worker_id,
                                    key=self.cfg.cluster_key,
                                    timeout=aiohttp.ClientTimeout(total=CANCEL_TIMEOUT_S))
            await read_whole(resp, t.worker_id)
        except (UpstreamFailure, TimeoutError) as exc:
            log.info("job_cancel_not_delivered", worker=t.worker_id, op=t.op_id,
                     error=str(exc))

    async def retry(self, job_id: str) -> tuple[StoredJob, list[str]]:
        """Start again every target that failed or was cancelled (new operations)."""
        job = self.get(job_id)
        again = [t for t in job.targets if t.state in ("failed", "cancelled")
                 and (job.id, t.worker_id) not in self.tasks]
        if not again:
            raise EldricError(f"job {job_id} has no failed target to retry", status=409,
                              code="nothing_to_retry")
        for t in again:
            t.attempt += 1
            t.op_id = f"{job.id}-{t.worker_id}-{t.attempt}"
            t.started = False
            t.state = "queued"
            t.completed_bytes, t.total_bytes = 0, None
            t.error = t.code = None
            t.message = ""
            t.started_at = t.finished_at = None
            t.percent = t.bytes_per_second = t.eta_seconds = None
        job.cancelled = False
        job.state = "running"
        job.finished_at = None
        await self._write(job)
        for t in again:
            self._run(job, t)
        log.info("job_retried", job=job.id, targets=[t.worker_id for t in again])
        return job, [t.worker_id for t in again]


def _op_error(exc: UpstreamFailure) -> str:
    if exc.status == 404 and b"op_not_found" in exc.error_body:
        return "the worker no longer knows the operation (it restarted?)"
    return exc.message


def _code_of(exc: UpstreamFailure) -> str | None:
    try:
        code = msgspec.json.decode(exc.error_body)["error"].get("code")
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        return None
    return code if isinstance(code, str) else None
