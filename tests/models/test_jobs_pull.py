"""A pull job on a real controller driving fake model workers (tests/fakes/
model_worker.py): progress, in-band failure, retry, keys, concurrency."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import until, url_of
from tests.fakes import model_worker
from tests.models.fleet import by_worker, controller, fake_workers, finished, job, post, register


async def test_a_pull_reaches_every_worker_and_reports_progress(tmp_path):
    slow = model_worker.Knobs()
    slow.steps, slow.step_s, slow.verify_s = 4, 0.15, 0.6
    fast = model_worker.Knobs()
    async with fake_workers(slow, fast) as (a, b):
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(a), wid="wrk-a")
            await register(s, base, url_of(b), wid="wrk-b")
            status, accepted = await post(s, base + "/api/v1/models/pull",
                                          {"model": "llama3.2:3b"})
            assert status == 202
            assert accepted["status_url"] == f"/api/v1/models/pull-jobs/{accepted['job_id']}"
            jid = accepted["job_id"]
            # While verifying every byte is there, and the bar still shows under 100 %.
            verifying = await until(lambda: _target_in(s, base, jid, "wrk-a", "verifying"))
            assert verifying["completed_bytes"] == verifying["total_bytes"] == 1000
            assert verifying["percent"] is not None and verifying["percent"] < 100
            done = await finished(s, base, jid)
    assert done["state"] == "completed" and done["kind"] == "pull"
    assert done["finished_at"] >= done["created_at"]
    for t in done["targets"]:
        assert t["state"] == "completed" and t["percent"] == 100.0 and t["error"] is None
        assert t["completed_bytes"] == 1000 and t["message"] == "success"
        assert t["started_at"] <= t["finished_at"] and t["eta_seconds"] is None
    # The worker was asked once, with an op id of its own, the model as given.
    assert [b["model"] for b in slow.bodies] == ["llama3.2:3b"]
    assert slow.bodies[0]["op_id"] != fast.bodies[0]["op_id"]


async def _target_in(s, base, jid, wid, state):  # type: ignore[no-untyped-def]
    t = by_worker(await job(s, base, jid))[wid]
    return t if t["state"] == state else None


async def test_a_worker_failing_in_band_leaves_the_job_partial_and_retry_completes_it(tmp_path):
    ok, bad = model_worker.Knobs(), model_worker.Knobs()
    bad.fail_at = 2
    async with fake_workers(ok, bad) as (a, b):
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(a), wid="wrk-ok")
            await register(s, base, url_of(b), wid="wrk-bad")
            _, accepted = await post(s, base + "/api/v1/models/pull", {"model": "qwen"})
            j = await finished(s, base, accepted["job_id"])
            assert j["state"] == "partial"
            t = by_worker(j)
            assert t["wrk-ok"]["state"] == "completed"
            assert t["wrk-bad"]["state"] == "failed" and t["wrk-bad"]["code"] == "backend_error"
            assert t["wrk-bad"]["error"] and t["wrk-bad"]["percent"] < 100
            bad.fail_at = None
            status, again = await post(
                s, f"{base}/api/v1/models/pull-jobs/{accepted['job_id']}/retry", {})
            assert status == 202 and again["retried"] == ["wrk-bad"]
            j = await finished(s, base, accepted["job_id"])
            assert j["state"] == "completed"
            # Nothing left to retry.
            status, body = await post(
                s, f"{base}/api/v1/models/pull-jobs/{accepted['job_id']}/retry", {})
            assert status == 409 and body["error"]["code"] == "nothing_to_retry"
    assert len(ok.bodies) == 1  # the retry asked only the failed worker
    assert len({b["op_id"] for b in bad.bodies}) == 2  # a new operation


async def test_mutations_need_the_admin_key_and_workers_get_the_cluster_key(tmp_path):
    knobs = model_worker.Knobs()
    knobs.key = "ck"
    async with fake_workers(knobs) as (w,):
        async with controller(tmp_path, admin_key="ak", cluster_key="ck") as c, \
                aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(w), wid="wrk-k", key="ck")
            for path in ("/api/v1/models/pull", "/api/v1/models/distribute"):
                status, body = await post(s, base + path, {"model": "m", "source": "ollama"})
                assert status == 401 and body["error"]["code"] == "invalid_api_key"
                status, _ = await post(s, base + path, {"model": "m", "source": "ollama"},
                                       key="ck")
                assert status == 401  # the cluster key is not the admin key
            status, accepted = await post(s, base + "/api/v1/models/pull", {"model": "m"},
                                          key="ak")
            assert status == 202
            j = await finished(s, base, accepted["job_id"])
            assert j["state"] == "completed"
            for method in ("DELETE", "POST"):
                url = f"{base}/api/v1/models/pull-jobs/{j['id']}" + (
                    "/retry" if method == "POST" else "")
                async with s.request(method, url) as r:
                    assert r.status == 401
            async with s.delete(f"{base}/api/v1/models/m") as r:
                assert r.status == 401
    assert set(knobs.auth) == {"Bearer ck"}


async def test_at_most_pull_concurrency_workers_pull_at_once(tmp_path):
    knobs = [model_worker.Knobs() for _ in range(3)]
    for k in knobs:
        k.steps, k.step_s = 3, 0.1
    async with fake_workers(*knobs) as servers:
        async with controller(tmp_path, pull_concurrency=1) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            for i, srv in enumerate(servers):
                await register(s, base, url_of(srv), wid=f"wrk-{i}")
            _, accepted = await post(s, base + "/api/v1/models/pull", {"model": "m"})
            most = 0
            while True:
                j = await job(s, base, accepted["job_id"])
                busy = [t for t in j["targets"] if t["state"] in ("pulling", "verifying")]
                most = max(most, len(busy))
                if j["state"] != "running":
                    break
                await asyncio.sleep(0.02)
    assert most == 1 and j["state"] == "completed"


async def test_bad_pull_bodies_are_400_and_unknown_jobs_404(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        for body, param in (({}, "model"), ({"model": 3}, "model"),
                            ({"model": "m", "wrkers": []}, None),
                            ({"model": "m", "url": "ftp://x"}, "url"),
                            ({"model": " "}, "model")):
            status, err = await post(s, base + "/api/v1/models/pull", body)
            assert status == 400, body
            assert err["error"]["type"] == "invalid_request_error"
            if param:
                assert err["error"]["param"] == param
        async with s.post(base + "/api/v1/models/pull", data=b"{") as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"
        for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/retry")):
            async with s.request(method, f"{base}/api/v1/models/pull-jobs/job-nope{path}") as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "job_not_found"
