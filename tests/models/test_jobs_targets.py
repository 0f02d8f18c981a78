"""Who a job runs on: live inference workers whose backend can do it; every other
worker is listed as skipped with the reason; none left is 400 no_targets."""

from __future__ import annotations

import aiohttp

from tests.conftest import url_of
from tests.fakes import model_worker
from tests.models.fleet import by_worker, controller, fake_workers, finished, post, register

FILES = {"pull": ["url"], "install": True, "delete": True, "files": True}


async def test_pull_to_all_skips_what_cannot_pull_by_name_and_says_why(tmp_path):
    knobs = model_worker.Knobs()
    dead = "http://127.0.0.1:9"
    async with fake_workers(knobs) as (server,):
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(server), wid="wrk-ollama")
            await register(s, base, url_of(server), wid="cld-ollama", worker_type="cloud")
            await register(s, base, dead, wid="wrk-llamacpp", model_ops=FILES,
                           backend="llamacpp")
            await register(s, base, dead, wid="wrk-old", model_ops=None)
            await register(s, base, dead, wid="dat-1", worker_type="data")
            await register(s, base, dead, wid="rtr-1", worker_type="router")
            await register(s, base, dead, wid="wrk-gone")
            async with s.post(f"{base}/api/v1/workers/wrk-gone/deregister") as r:
                assert r.status == 200
            _, accepted = await post(s, base + "/api/v1/models/pull", {"model": "m"})
            j = await finished(s, base, accepted["job_id"])
    t = by_worker(j)
    assert "rtr-1" not in t  # routers are no workers
    assert {w: x["state"] for w, x in t.items()} == {
        "wrk-ollama": "completed", "cld-ollama": "completed", "wrk-llamacpp": "skipped",
        "wrk-old": "skipped", "dat-1": "skipped", "wrk-gone": "skipped"}
    assert t["wrk-llamacpp"]["error"] == "its backend cannot pull by name"
    assert "does not manage models" in t["wrk-old"]["error"]
    assert t["dat-1"]["error"] == "a data worker serves no models"
    assert t["wrk-gone"]["error"] == "offline"
    assert j["state"] == "completed"  # skipped targets do not count against it


async def test_named_workers_and_backend_types(tmp_path):
    knobs = model_worker.Knobs()
    async with fake_workers(knobs) as (server,):
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(server), wid="wrk-a")
            await register(s, base, url_of(server), wid="wrk-b", backend="vllm")
            _, accepted = await post(s, base + "/api/v1/models/pull",
                                     {"model": "m", "workers": ["wrk-b", "wrk-a", "wrk-x"],
                                      "backend_types": ["ollama"]})
            j = await finished(s, base, accepted["job_id"])
            # A URL pull needs a backend that pulls files: none here.
            status, body = await post(s, base + "/api/v1/models/pull",
                                      {"model": "m.gguf", "url": "http://h/m.gguf"})
    assert [t["worker_id"] for t in j["targets"]] == ["wrk-b", "wrk-a", "wrk-x"]
    t = by_worker(j)
    assert t["wrk-a"]["state"] == "completed"
    assert t["wrk-b"]["state"] == "skipped" and "backend_types" in t["wrk-b"]["error"]
    assert t["wrk-x"] == {**t["wrk-x"], "state": "skipped", "error": "unknown worker"}
    assert status == 400 and body["error"]["code"] == "no_targets"
    assert "cannot pull from a URL" in body["error"]["message"]


async def test_no_worker_at_all_is_no_targets(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        status, body = await post(s, c["controller"] + "/api/v1/models/pull", {"model": "m"})
        async with s.get(c["controller"] + "/api/v1/models/pull-jobs") as r:
            jobs = await r.json()
    assert status == 400 and body["error"]["code"] == "no_targets"
    assert jobs == {"jobs": []}  # a refused job is no job
