"""A controller killed (SIGKILL) mid-job: the restarted one carries on with the job
(re-attaching to the worker's operation, not starting another), and fails the targets
whose worker went away meanwhile, with that reason; none is left "pulling"."""

from __future__ import annotations

import asyncio
import signal

import aiohttp

from tests.conftest import free_port, until, url_of
from tests.fakes import model_worker
from tests.models.fleet import (by_worker, fake_workers, finished, heartbeats, job, post,
                                 register, up)



async def _pulling(s, base, jid, wid):  # type: ignore[no-untyped-def]
    t = by_worker(await job(s, base, jid))[wid]
    return t["state"] == "pulling" and t["completed_bytes"] > 0


async def test_a_killed_controller_resumes_its_jobs(tmp_path, eldric_proc):
    stays, dies = model_worker.Knobs(), model_worker.Knobs()
    for k in (stays, dies):
        k.steps, k.step_s = 30, 0.1
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ("--role", "controller", "--port", str(port), "--bind", "127.0.0.1",
            "--data-dir", str(tmp_path), "--worker-timeout", "1500", "--flush-interval", "100")
    async with fake_workers(stays, dies) as (a, b), aiohttp.ClientSession() as s:
        proc = eldric_proc(*args)
        await until(lambda: up(s, base), timeout=15)
        await register(s, base, url_of(a), wid="wrk-stays")
        await register(s, base, url_of(b), wid="wrk-dies")
        async with heartbeats(s, base, "wrk-stays"):
            _, accepted = await post(s, base + "/api/v1/models/pull", {"model": "m"})
            jid = accepted["job_id"]
            await until(lambda: _pulling(s, base, jid, "wrk-stays"))
            await asyncio.sleep(0.3)  # a flush of the bytes
            proc.p.send_signal(signal.SIGKILL)
            proc.p.wait(5)
            await model_worker.kill(b)  # it goes away while the controller is down
            eldric_proc(*args)
            await until(lambda: up(s, base), timeout=15)
            j = await finished(s, base, jid, timeout=20)
    t = by_worker(j)
    assert j["state"] == "partial"
    assert t["wrk-stays"]["state"] == "completed" and t["wrk-stays"]["percent"] == 100.0
    assert t["wrk-dies"]["state"] == "failed" and t["wrk-dies"]["code"] == "worker_gone"
    # The operation was started once and re-attached to after the restart.
    assert stays.seen.count("POST /api/v1/models/pull") == 1
    op = stays.bodies[0]["op_id"]
    assert f"GET /api/v1/models/ops/{op}" in stays.seen
