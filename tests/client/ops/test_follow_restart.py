"""A pull followed by `eldric models pull` while its controller is killed and started
again: the client reopens the event stream, its first event (the snapshot) puts the bars
right, and it ends when the job ends, with the job's outcome; a controller that stays
away ends the follow with one line (the job goes on there)."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from tests.client.ops.cli import ROOT, eldric
from tests.conftest import free_port, until, url_of
from tests.fakes import model_worker
from tests.models.fleet import by_worker, fake_workers, heartbeats, job, register, up

ADMIN = "adm"


async def _pulling(s, base, wid):  # type: ignore[no-untyped-def]
    async with s.get(base + "/api/v1/models/pull-jobs") as r:
        jobs = (await r.json())["jobs"]
    if not jobs:
        return None
    t = by_worker(await job(s, base, jobs[0]["id"]))[wid]
    return jobs[0]["id"] if t["state"] == "pulling" and t["completed_bytes"] > 0 else None


async def test_the_follow_survives_a_controller_restart(tmp_path, eldric_proc):
    k = model_worker.Knobs()
    k.steps, k.step_s = 25, 0.1
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ("--role", "controller", "--port", str(port), "--bind", "127.0.0.1",
            "--data-dir", str(tmp_path / "c"), "--admin-key", ADMIN, "--flush-interval", "100")
    async with fake_workers(k) as (a,), aiohttp.ClientSession() as s:
        proc = eldric_proc(*args)
        await until(lambda: up(s, base), timeout=15)
        await register(s, base, url_of(a), wid="wrk-a")
        async with heartbeats(s, base, "wrk-a"):
            client = asyncio.create_task(eldric(tmp_path, "models", "pull", "m",
                                                "--controller", base, "--admin-key", ADMIN))
            await until(lambda: _pulling(s, base, "wrk-a"), timeout=15)
            # the controller writes "started" with its next flush (every 100 ms here): a
            # kill before it would be a restart that starts the operation again, which is
            # the controller's rule, not what this test is about; on a busy host, wait
            await asyncio.sleep(1)
            proc.p.send_signal(signal.SIGKILL)
            proc.p.wait(5)
            await asyncio.sleep(0.5)  # the client finds the stream gone
            eldric_proc(*args)
            ran = await asyncio.wait_for(client, 40)
    assert ran.rc == 0, ran
    assert ran.out.startswith("job ") and ran.out.strip().endswith(" completed")
    assert ran.err.strip().splitlines()[-1].startswith("wrk-a")
    assert "100.0%  completed" in ran.err.strip().splitlines()[-1]
    assert k.seen.count("POST /api/v1/models/pull") == 1  # the same operation, followed on


async def test_a_controller_that_stays_away_ends_the_follow_in_one_line(tmp_path, eldric_proc):
    k = model_worker.Knobs()
    k.hang = True
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ("--role", "controller", "--port", str(port), "--bind", "127.0.0.1",
            "--data-dir", str(tmp_path / "c"), "--admin-key", ADMIN)
    async with fake_workers(k) as (a,), aiohttp.ClientSession() as s:
        proc = eldric_proc(*args)
        await until(lambda: up(s, base), timeout=15)
        await register(s, base, url_of(a), wid="wrk-a")
        # The follow's patience, shortened for the test (the default is 30 s).
        client = asyncio.create_subprocess_exec(
            sys.executable, "-c", "import eldric.client.ops.jobs as j, sys; "
            "j.GONE_S = 1.5; from eldric.cli import main; main(sys.argv[1:])",
            "models", "pull", "m", "--controller", base, "--admin-key", ADMIN, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        p = await client
        await until(lambda: _hanging(s, base), timeout=15)
        proc.p.send_signal(signal.SIGKILL)
        proc.p.wait(5)
        out, err = await asyncio.wait_for(p.communicate(), 20)
    assert p.returncode == 1
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith(f"error: cannot reach {base}/api/v1/models/events")


async def _hanging(s, base):  # type: ignore[no-untyped-def]
    async with s.get(base + "/api/v1/models/pull-jobs") as r:
        jobs = (await r.json())["jobs"]
    return bool(jobs) and jobs[0]["targets"][0]["state"] == "pulling"
