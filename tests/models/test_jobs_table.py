"""The jobs' rows in SQLite (jobs/table.py) and what a starting controller makes of them
(Jobs.start): in process, on a real database."""

from __future__ import annotations

import aiohttp
import pytest

from eldric.bus import Bus
from eldric.roles.controller.config import ControllerConfig
from eldric.roles.controller.jobs import SCHEMA, JobTable, Jobs
from eldric.roles.controller.jobs.table import StoredJob, StoredTarget
from eldric.roles.controller.registry import Registry
from eldric.store.sqlite import Store
from tests.conftest import until


def _store(tmp_path) -> Store:  # type: ignore[no-untyped-def]
    return Store(str(tmp_path / "c.db"), ["workers", "settings"], SCHEMA)


def _job(jid: str, *targets: StoredTarget, state: str = "running") -> StoredJob:
    return StoredJob(id=jid, kind="pull", model="m", state=state,  # type: ignore[arg-type]
                     created_at=1.0, targets=list(targets))


async def test_rows_round_trip_and_an_unreadable_row_is_skipped(tmp_path):
    store = _store(tmp_path)
    await store.open()
    try:
        table = JobTable(store)
        t = StoredTarget(worker_id="wrk-b", state="pulling", completed_bytes=5, op_id="op-1",
                         started=True, body={"model": "m"}, keyed=True, attempt=2)
        job = _job("job-1", t, StoredTarget(worker_id="wrk-a", state="skipped", error="why"))
        await table.save([job])
        await store.run(lambda db: db.execute(
            "INSERT INTO jobs (id, created_at, value) VALUES ('job-bad', 2, x'7b')"))
        (loaded,) = await table.load()
        assert loaded == job  # targets in their order, op ids, bodies
        await table.delete(["job-1"])
        assert await table.load() == []
        assert await store.run(lambda db: db.execute(
            "SELECT count(*) FROM job_targets").fetchone()[0]) == 0
    finally:
        await store.close()


async def test_a_start_ends_what_the_last_run_left_half_written(tmp_path):
    """A job whose last target ended just before the stop (its job row not yet updated)
    ends at start; a target whose worker is no longer registered fails with that reason,
    never stays pulling."""
    store = _store(tmp_path)
    await store.open()
    try:
        table = JobTable(store)
        await table.save([
            _job("job-done", StoredTarget(worker_id="w1", state="completed"),
                 StoredTarget(worker_id="w2", state="failed", error="e")),
            _job("job-orphan", StoredTarget(worker_id="wrk-gone", state="pulling",
                                            op_id="op-x", started=True)),
        ])
        registry = Registry(store)
        jobs = Jobs(ControllerConfig(), registry, table)
        async with aiohttp.ClientSession() as session:
            await jobs.start(Bus(), session, "http://127.0.0.1:1")
            try:
                assert jobs.get("job-done").state == "partial"
                await until(lambda: jobs.get("job-orphan").state != "running")
                (t,) = jobs.get("job-orphan").targets
                assert (t.state, t.code) == ("failed", "worker_gone")
            finally:
                await jobs.stop()
        stored = {j.id: j.state for j in await table.load()}
        assert stored == {"job-done": "partial", "job-orphan": "failed"}
    finally:
        await store.close()


async def test_jobs_a_failed_flush_did_not_write_are_written_by_the_next(tmp_path):
    store = _store(tmp_path)
    await store.open()
    try:
        table = JobTable(store)
        jobs = Jobs(ControllerConfig(), Registry(store), table)
        job = _job("job-1", StoredTarget(worker_id="w", state="pulling"))
        jobs.jobs[job.id] = job
        jobs.touch(job)
        real = table.save

        async def failing(batch):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

        table.save = failing  # type: ignore[method-assign]
        with pytest.raises(OSError):
            await jobs.flush()
        table.save = real  # type: ignore[method-assign]
        await jobs.flush()
        (loaded,) = await table.load()
        assert loaded.targets[0].state == "pulling"
    finally:
        await store.close()
