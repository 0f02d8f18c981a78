"""The jobs in SQLite: one row per job and one per target, in the controller's database.

What is stored is what a restarted controller needs to carry on: each target's state,
bytes and the id of its operation on the worker (to re-attach to it), and the request
that starts it (to start it, or retry it). Secrets are not stored: the key a worker
needs to download from the registry or another worker is added when the request is sent.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

import msgspec

from eldric.store.sqlite import Store
from eldric.wire.models import Job, JobKind, JobState, Source, TargetStatus

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at REAL NOT NULL, "
    "value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS job_targets (job_id TEXT NOT NULL, worker_id TEXT NOT NULL, "
    "value BLOB NOT NULL, PRIMARY KEY (job_id, worker_id))",
)

Call = Literal["pull", "install", "delete"]


class StoredTarget(TargetStatus, kw_only=True):
    call: Call = "pull"
    body: dict[str, Any] = {}  # the PullRequest/InstallRequest, without op_id
    keyed: bool = False  # send the cluster key with the download (registry, worker files)
    op_id: str | None = None
    attempt: int = 0  # retries so far: names the next operation
    started: bool = False  # sent to the worker: re-attach to op_id, do not start again


class _Head(msgspec.Struct, kw_only=True):  # a job's row: the job without its targets
    id: str
    kind: JobKind
    model: str
    state: JobState
    created_at: float
    source: Source | None = None
    finished_at: float | None = None
    cancelled: bool = False


class StoredJob(_Head, kw_only=True):
    targets: list[StoredTarget] = []

    def public(self) -> Job:
        return Job(id=self.id, kind=self.kind, model=self.model, state=self.state,
                   created_at=self.created_at, source=self.source,
                   finished_at=self.finished_at,
                   targets=[TargetStatus(**{f: getattr(t, f)
                                            for f in TargetStatus.__struct_fields__})
                            for t in self.targets])


_enc = msgspec.json.Encoder()
_head = msgspec.json.Decoder(_Head)
_target = msgspec.json.Decoder(StoredTarget)


class JobTable:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self) -> list[StoredJob]:
        """Every stored job, oldest first; a row this version cannot read is skipped."""
        def read(db: sqlite3.Connection) -> list[StoredJob]:
            jobs: dict[str, StoredJob] = {}
            for value, in db.execute("SELECT value FROM jobs ORDER BY created_at"):
                try:
                    h = _head.decode(value)
                except msgspec.DecodeError:
                    continue
                jobs[h.id] = StoredJob(**msgspec.structs.asdict(h))
            for job_id, value in db.execute(
                    "SELECT job_id, value FROM job_targets ORDER BY rowid"):
                job = jobs.get(job_id)
                if job is None:
                    continue
                try:
                    job.targets.append(_target.decode(value))
                except msgspec.DecodeError:
                    continue
            return list(jobs.values())
        return await self.store.run(read)

    async def save(self, jobs: list[StoredJob]) -> None:
        rows = []
        targets = []
        for job in jobs:
            head = _Head(**{f: getattr(job, f) for f in _Head.__struct_fields__})
            rows.append((job.id, job.created_at, _enc.encode(head)))
            targets += [(job.id, t.worker_id, _enc.encode(t)) for t in job.targets]

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN")
                db.executemany("INSERT INTO jobs (id, created_at, value) VALUES (?, ?, ?) "
                               "ON CONFLICT(id) DO UPDATE SET value = excluded.value", rows)
                db.executemany("INSERT INTO job_targets (job_id, worker_id, value) "
                               "VALUES (?, ?, ?) ON CONFLICT(job_id, worker_id) "
                               "DO UPDATE SET value = excluded.value", targets)
        if rows:
            await self.store.run(write)

    async def delete(self, ids: list[str]) -> None:
        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN")
                db.executemany("DELETE FROM job_targets WHERE job_id = ?", [(i,) for i in ids])
                db.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])
        if ids:
            await self.store.run(write)
