"""The controller with workers behind NAT: it takes tunnel:// URLs (and refuses one that
names no tunnel), keeps and lists who contributed a worker (contributed_by, set by the
edge that relayed the registration), and never tries to call a tunnelled worker itself:
model jobs skip it with the reason, its model list answers 409 worker_via_tunnel."""

from __future__ import annotations

import aiohttp

from tests.conftest import url_of
from tests.fakes import model_worker
from tests.models.fleet import OLLAMA_OPS, controller, fake_workers, finished, post, register

TUNNELLED = "tunnel+http://127.0.0.1:9/tun-abc"


async def test_tunnel_urls_are_taken_and_contributed_by_is_listed(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        body = {"worker_type": "inference", "url": TUNNELLED, "id": "wrk-t",
                "contributed_by": "alice-home-gpu"}
        async with s.post(base + "/api/v1/workers/register", json=body) as r:
            assert r.status == 200
        async with s.post(base + "/api/v1/workers/register",
                          json={"worker_type": "inference", "url": "http://127.0.0.1:1",
                                "id": "wrk-d"}) as r:
            assert r.status == 200
        async with s.get(base + "/api/v1/workers") as r:
            listed = {w["id"]: w for w in (await r.json())["workers"]}
        assert listed["wrk-t"]["url"] == TUNNELLED
        assert listed["wrk-t"]["contributed_by"] == "alice-home-gpu"
        assert listed["wrk-d"]["contributed_by"] is None
    # kept across a controller restart (the registry's SQLite)
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        async with s.get(c["controller"] + "/api/v1/workers") as r:
            listed = {w["id"]: w for w in (await r.json())["workers"]}
        assert listed["wrk-t"]["contributed_by"] == "alice-home-gpu"


async def test_a_tunnel_url_naming_no_tunnel_is_refused(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        for url in ("tunnel://edge.example.com/", "tunnel://edge/a/b", "ftp://x"):
            async with s.post(c["controller"] + "/api/v1/workers/register",
                              json={"worker_type": "inference", "url": url}) as r:
                assert r.status == 400, url
                assert (await r.json())["error"]["param"] == "url"


async def test_jobs_skip_a_tunnelled_worker_and_say_why(tmp_path):
    knobs = model_worker.Knobs()
    async with fake_workers(knobs) as (direct,):
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(direct), wid="wrk-direct")
            await register(s, base, TUNNELLED, wid="wrk-tunnel", model_ops=OLLAMA_OPS)
            status, accepted = await post(s, base + "/api/v1/models/pull", {"model": "qwen"})
            assert status == 202
            done = await finished(s, base, accepted["job_id"])
            async with s.get(base + "/api/v1/workers/wrk-tunnel/models") as r:
                assert r.status == 409
                assert (await r.json())["error"]["code"] == "worker_via_tunnel"
    targets = {t["worker_id"]: t for t in done["targets"]}
    assert targets["wrk-direct"]["state"] == "completed"
    assert targets["wrk-tunnel"]["state"] == "skipped"
    assert "via tunnel" in targets["wrk-tunnel"]["error"]


async def test_a_tunnelled_worker_is_no_distribution_source(tmp_path):
    files = {**OLLAMA_OPS, "pull": ["url"], "files": True}
    async with controller(tmp_path, admin_key="ak") as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        await register(s, base, TUNNELLED, wid="wrk-tunnel", model_ops=files,
                       models=["tiny.gguf"])
        status, body = await post(s, base + "/api/v1/models/distribute",
                                  {"model": "tiny.gguf", "source": "worker",
                                   "from": "wrk-tunnel"}, key="ak")
    assert status == 400
    assert body["error"]["code"] == "worker_via_tunnel" and body["error"]["param"] == "from"
