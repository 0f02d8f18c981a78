"""`eldric models` against a real controller driving fake model workers (tests/fakes/
model_worker.py): coverage, pull and distribute followed to their end with a bar per
worker, jobs and cancel, and the failures (a worker failing, wrong key, no target, down)."""

from __future__ import annotations

import re

import aiohttp

from tests.client.ops.cli import eldric, rows
from tests.client.ops.tty import in_a_terminal
from tests.conftest import free_port, until, url_of
from tests.fakes import model_worker
from tests.models.fleet import by_worker, controller, fake_workers, finished, job, register

ADMIN = "adm-key"


async def test_models_with_their_coverage(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        await register(s, base, "http://127.0.0.1:1", wid="wrk-a", models=["qwen", "llama"])
        await register(s, base, "http://127.0.0.1:2", wid="wrk-b", models=["qwen"])
        table = await eldric(tmp_path, "models", "--controller", base)
        as_json = await eldric(tmp_path, "models", "--json", "--controller", base)
    assert table.rc == 0, table
    got = rows(table.out)
    assert got["qwen"] == ["qwen", "100%", "wrk-a,wrk-b"]
    assert got["llama"] == ["llama", "50%", "wrk-a"]
    assert {m["id"]: m["coverage_percent"] for m in as_json.json()["models"]} == {
        "llama": 50.0, "qwen": 100.0}


async def test_pull_follows_every_worker_to_the_end(tmp_path):
    slow, fast = model_worker.Knobs(), model_worker.Knobs()
    slow.steps, slow.step_s = 4, 0.1
    async with fake_workers(slow, fast) as (a, b):
        async with controller(tmp_path, admin_key=ADMIN) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(a), wid="wrk-slow")
            await register(s, base, url_of(b), wid="wrk-fast")
            ran = await eldric(tmp_path, "models", "pull", "llama3.2:3b", "--controller", base,
                               "--admin-key", ADMIN)
    assert ran.rc == 0, ran
    assert re.fullmatch(r"job \S+ completed\n", ran.out)
    # Not a terminal: a line per state (and quarter) a target reaches, each worker's
    # last one completed at 100 %.
    last = {}
    for ln in ran.err.splitlines():
        last[ln.split()[0]] = ln
    assert set(last) == {"wrk-slow", "wrk-fast"}
    for ln in last.values():
        assert "100.0%  completed" in ln
    assert any("pulling" in ln and "wrk-slow" in ln for ln in ran.err.splitlines())
    assert [b["model"] for b in slow.bodies] == ["llama3.2:3b"]


async def test_pull_shows_live_bars_in_a_terminal(tmp_path):
    slow = model_worker.Knobs()
    slow.steps, slow.step_s, slow.verify_s = 10, 0.3, 0.5
    async with fake_workers(slow) as (a,):
        async with controller(tmp_path, admin_key=ADMIN) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(a), wid="wrk-a")
            async with in_a_terminal(tmp_path, "models", "pull", "qwen", "--controller",
                                     base, "--admin-key", ADMIN) as term:
                # A bar part-way while the controller still says the job runs: live.
                seen = await term.expect(rb"wrk-a +\[#+-+\] +[1-9]\d?\.\d% +pulling")
                status, body = await _jobs(s, base)
                assert [j["state"] for j in body["jobs"]] == ["running"]
                await term.expect(rb"100\.0% +completed")
                rc = await term.wait()
    assert rc == 0
    assert b"\x1b[1F" in seen or b"\x1b[1F" in term.output  # redrawn in place
    assert term.output.count(b"completed") >= 1 and b"Traceback" not in term.output


async def _jobs(s: aiohttp.ClientSession, base: str) -> tuple[int, dict]:
    async with s.get(base + "/api/v1/models/pull-jobs") as r:
        return r.status, await r.json()


async def test_a_worker_failing_ends_the_pull_with_its_reason_and_exit_1(tmp_path):
    ok, bad = model_worker.Knobs(), model_worker.Knobs()
    bad.fail_at = 2
    async with fake_workers(ok, bad) as (a, b):
        async with controller(tmp_path, admin_key=ADMIN) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(a), wid="wrk-ok")
            await register(s, base, url_of(b), wid="wrk-bad")
            ran = await eldric(tmp_path, "models", "pull", "qwen", "--controller", base,
                               env={"ELDRIC_ADMIN_KEY": ADMIN})
            as_json = await eldric(tmp_path, "models", "pull", "qwen", "--json",
                                   "--workers", "wrk-bad", "--controller", base,
                                   "--admin-key", ADMIN)
    assert ran.rc == 1 and re.fullmatch(r"job \S+ partial\n", ran.out), ran
    err = ran.err.strip().splitlines()
    assert re.fullmatch(r"error: job \S+ partial: wrk-bad: max retries exceeded: "
                        r"connection reset \(backend_error\)", err[-1])
    bad_lines = [ln for ln in err if ln.startswith("wrk-bad")]
    # Its bar ends saying why, not stuck part-way as if it were still pulling.
    assert "failed: max retries exceeded" in bad_lines[-1]
    assert "Traceback" not in ran.err
    assert as_json.rc == 1
    j = as_json.json()
    assert j["state"] == "failed" and by_worker(j)["wrk-bad"]["code"] == "backend_error"


async def test_pull_refusals_are_one_line(tmp_path):
    async with controller(tmp_path, admin_key=ADMIN) as c:
        base = c["controller"]
        keyless = await eldric(tmp_path, "models", "pull", "qwen", "--controller", base)
        wrong = await eldric(tmp_path, "models", "pull", "qwen", "--controller", base,
                             "--admin-key", "nope")
        nobody = await eldric(tmp_path, "models", "pull", "qwen", "--controller", base,
                              "--admin-key", ADMIN)
    assert keyless.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    assert wrong.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    assert nobody.one_error().startswith("error: HTTP 400 no_targets: ")
    down = f"http://127.0.0.1:{free_port()}"
    for args in (("models",), ("models", "pull", "qwen"), ("models", "jobs"),
                 ("models", "registry")):
        ran = await eldric(tmp_path, *args, "--controller", down)
        assert ran.one_error().startswith(f"error: cannot reach {down}/"), ran


async def test_detach_jobs_and_cancel(tmp_path):
    stuck = model_worker.Knobs()
    stuck.hang = True
    async with fake_workers(stuck) as (a,):
        async with controller(tmp_path, admin_key=ADMIN) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(a), wid="wrk-a")
            started = await eldric(tmp_path, "models", "pull", "qwen", "--detach", "--json",
                                   "--controller", base, "--admin-key", ADMIN)
            jid = started.json()["id"]
            assert started.rc == 0 and started.json()["state"] == "running"
            await until(lambda: _target_is(s, base, jid, "pulling"))
            listed = await eldric(tmp_path, "models", "jobs", "--controller", base)
            shown = await eldric(tmp_path, "models", "jobs", jid, "--controller", base)
            cancelled = await eldric(tmp_path, "models", "cancel", jid, "--controller", base,
                                     "--admin-key", ADMIN)
            unknown = await eldric(tmp_path, "models", "cancel", "job-nope", "--controller",
                                   base, "--admin-key", ADMIN)
            done = await finished(s, base, jid)
    assert listed.rc == 0 and rows(listed.out)[jid][1:4] == ["pull", "qwen", "running"]
    assert shown.rc == 0 and shown.out.splitlines()[0] == f"job {jid}: pull qwen, running"
    assert re.match(r"wrk-a +\[-+\] +0\.0% +pulling", shown.out.splitlines()[1])
    assert cancelled.rc == 0 and cancelled.out.startswith(f"job {jid} ")
    assert done["state"] == "cancelled"
    assert unknown.one_error().startswith("error: HTTP 404 job_not_found: ")


async def _target_is(s, base, jid, state):  # type: ignore[no-untyped-def]
    return (await job(s, base, jid))["targets"][0]["state"] == state


async def test_distribute_puts_a_model_where_it_is_missing(tmp_path):
    has, lacks = model_worker.Knobs(["qwen"]), model_worker.Knobs()
    async with fake_workers(has, lacks) as (a, b):
        async with controller(tmp_path, admin_key=ADMIN) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(a), wid="wrk-has", models=["qwen"])
            await register(s, base, url_of(b), wid="wrk-lacks")
            ran = await eldric(tmp_path, "models", "distribute", "qwen", "--source", "ollama",
                               "--json", "--controller", base, "--admin-key", ADMIN)
            bad = await eldric(tmp_path, "models", "distribute", "qwen", "--source", "worker",
                               "--from", "wrk-nope", "--controller", base,
                               "--admin-key", ADMIN)
    assert ran.rc == 0, ran
    j = ran.json()
    assert j["kind"] == "distribute" and j["state"] == "completed"
    assert by_worker(j)["wrk-lacks"]["state"] == "completed"
    assert [b["model"] for b in lacks.bodies] == ["qwen"]
    assert bad.one_error().startswith("error: HTTP 4")


async def test_ctrl_c_stops_following_and_the_job_goes_on(tmp_path):
    slow = model_worker.Knobs()
    slow.steps, slow.step_s = 50, 0.2
    async with fake_workers(slow) as (a,):
        async with controller(tmp_path, admin_key=ADMIN) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(a), wid="wrk-a")
            async with in_a_terminal(tmp_path, "models", "pull", "qwen", "--controller",
                                     base, "--admin-key", ADMIN) as term:
                await term.expect(rb"wrk-a +\[#+-+\] +[1-9]\d?\.\d% +pulling")
                term.type(b"\x03")
                said = await term.expect(rb"models cancel job-\w+`")
                rc = await term.wait()
            _, body = await _jobs(s, base)
    assert rc == 130
    [j] = body["jobs"]
    assert j["state"] == "running"  # only the watching stopped
    assert f"stopped following; job {j['id']} goes on".encode() in said
    assert b"Traceback" not in term.output
