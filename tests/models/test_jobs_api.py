"""The controller's model API around jobs: the job list and its bound, deletion as a
job, show and a worker's model list relayed, distribution's sources."""

from __future__ import annotations

import aiohttp

from tests.conftest import url_of
from tests.fakes import model_worker
from tests.models.fleet import (by_worker, controller, fake_workers, finished, get, post,
                                 register)

FILES = {"pull": ["url"], "install": True, "delete": True, "files": True}


async def test_the_job_list_is_newest_first_and_bounded(tmp_path):
    async with fake_workers(model_worker.Knobs()) as (w,):
        async with controller(tmp_path, job_history=2) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(w), wid="wrk-1")
            ids = []
            for name in ("a", "b", "c"):
                _, accepted = await post(s, base + "/api/v1/models/pull", {"model": name})
                await finished(s, base, accepted["job_id"])
                ids.append(accepted["job_id"])
            _, listing = await get(s, base + "/api/v1/models/pull-jobs")
            gone, _ = await get(s, f"{base}/api/v1/models/pull-jobs/{ids[0]}")
        # Forgotten on disk too: a restart does not bring it back.
        async with controller(tmp_path, job_history=2) as c, aiohttp.ClientSession() as s:
            _, again = await get(s, c["controller"] + "/api/v1/models/pull-jobs")
    assert [j["id"] for j in listing["jobs"]] == [ids[2], ids[1]]
    assert [j["model"] for j in listing["jobs"]] == ["c", "b"]
    assert gone == 404
    assert [j["id"] for j in again["jobs"]] == [ids[2], ids[1]]


async def test_delete_is_a_job_on_the_workers_that_have_the_model(tmp_path):
    has, hasnt, other = (model_worker.Knobs(["m", "x"]), model_worker.Knobs(["x"]),
                         model_worker.Knobs(["m"]))
    async with fake_workers(has, hasnt, other) as servers:
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(servers[0]), wid="wrk-has", models=["m", "x"])
            await register(s, base, url_of(servers[1]), wid="wrk-hasnt", models=["x"])
            await register(s, base, url_of(servers[2]), wid="wrk-other", models=["m"])
            async with s.delete(base + "/api/v1/models/m") as r:
                assert r.status == 202
                j = await finished(s, base, (await r.json())["job_id"])
            # Named workers: one of them does not have it (nothing to do there).
            async with s.delete(base + "/api/v1/models/x?workers=wrk-hasnt,wrk-other") as r:
                named = await finished(s, base, (await r.json())["job_id"])
            async with s.delete(base + "/api/v1/models/nobody-has-it") as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "model_not_found"
    assert j["kind"] == "delete" and j["state"] == "completed"
    assert sorted(by_worker(j)) == ["wrk-has", "wrk-other"]
    assert has.models == ["x"] and other.models == [] and hasnt.models == []
    t = by_worker(named)
    assert t["wrk-hasnt"]["state"] == "completed" and t["wrk-other"]["state"] == "completed"
    assert t["wrk-other"]["message"] == "it was not on this worker"


async def test_show_is_relayed_from_a_worker_that_has_the_model(tmp_path):
    down, up = model_worker.Knobs(["llama"]), model_worker.Knobs(["llama"])
    async with fake_workers(up) as (srv,):
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, "http://127.0.0.1:9", wid="wrk-down", models=["llama"])
            await register(s, base, url_of(srv), wid="wrk-up", models=["llama"])
            status, shown = await post(s, base + "/api/v1/models/show", {"model": "llama"})
            missing, err = await post(s, base + "/api/v1/models/show", {"model": "other"})
            bad, _ = await post(s, base + "/api/v1/models/show", {"name": "llama"})
    assert status == 200 and shown["template"] == "{{ .Prompt }}"  # Ollama's, untouched
    assert shown["modelfile"] == "FROM llama"
    assert missing == 404 and err["error"]["code"] == "model_not_found"
    assert bad == 400
    assert down.seen == []


async def test_show_when_no_worker_answers_is_503_naming_each(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        await register(s, base, "http://127.0.0.1:9", wid="wrk-down", models=["llama"])
        status, err = await post(s, base + "/api/v1/models/show", {"model": "llama"})
    assert status == 503 and "wrk-down" in err["error"]["message"]


async def test_a_workers_models_are_relayed_for_the_drill_down(tmp_path):
    knobs = model_worker.Knobs(["llama", "qwen"])
    async with fake_workers(knobs) as (srv,):
        async with controller(tmp_path, cluster_key="ck") as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(srv), wid="wrk-1", key="ck")
            await register(s, base, "http://127.0.0.1:9", wid="wrk-down", key="ck")
            status, local = await get(s, base + "/api/v1/workers/wrk-1/models")
            unknown, err = await get(s, base + "/api/v1/workers/wrk-nope/models")
            down, down_err = await get(s, base + "/api/v1/workers/wrk-down/models")
    assert status == 200 and local["backend"] == "ollama"
    assert [m["name"] for m in local["models"]] == ["llama", "qwen"]
    assert knobs.auth == ["Bearer ck"]
    assert unknown == 404 and err["error"]["code"] == "worker_not_found"
    assert down == 503 and down_err["error"]["code"] == "upstream_unavailable"


async def test_distribute_from_a_url_a_worker_or_ollama(tmp_path):
    src, dst, has = (model_worker.Knobs(["tiny.gguf"]), model_worker.Knobs(),
                     model_worker.Knobs(["tiny.gguf"]))
    async with fake_workers(src, dst, has) as servers:
        src_url = url_of(servers[0])
        async with controller(tmp_path, cluster_key="ck", admin_key="ak") as c, \
                aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(servers[0]), wid="wrk-src", model_ops=FILES,
                           models=["tiny.gguf"], key="ck")
            await register(s, base, url_of(servers[1]), wid="wrk-dst", model_ops=FILES,
                           key="ck")
            await register(s, base, url_of(servers[2]), wid="wrk-has", model_ops=FILES,
                           models=["tiny.gguf"], key="ck")
            status, accepted = await post(s, base + "/api/v1/models/distribute",
                                          {"model": "tiny.gguf", "source": "worker",
                                           "from": "wrk-src"}, key="ak")
            assert status == 202
            j = await finished(s, base, accepted["job_id"])
            status, by_url = await post(s, base + "/api/v1/models/distribute",
                                        {"model": "big.gguf", "source": "url",
                                         "url": "http://files.example/big.gguf",
                                         "sha256": "ab" * 32, "workers": ["wrk-dst"]},
                                        key="ak")
            url_job = await finished(s, base, by_url["job_id"])
            no_url, e1 = await post(s, base + "/api/v1/models/distribute",
                                    {"model": "m", "source": "url"}, key="ak")
            no_from, e2 = await post(s, base + "/api/v1/models/distribute",
                                     {"model": "m", "source": "worker"}, key="ak")
            not_there, e3 = await post(s, base + "/api/v1/models/distribute",
                                       {"model": "m", "source": "worker", "from": "wrk-dst"},
                                       key="ak")
            no_reg, e4 = await post(s, base + "/api/v1/models/distribute",
                                    {"model": "reg-1", "source": "registry"}, key="ak")
            bad_source, _ = await post(s, base + "/api/v1/models/distribute",
                                       {"model": "m", "source": "ftp"}, key="ak")
            ollama, e5 = await post(s, base + "/api/v1/models/distribute",
                                    {"model": "m", "source": "ollama"}, key="ak")
    assert j["kind"] == "distribute" and j["source"] == "worker" and j["state"] == "completed"
    t = by_worker(j)
    assert t["wrk-dst"]["state"] == "completed"
    assert t["wrk-src"]["error"] == "it is the source"
    assert t["wrk-has"]["error"] == "it has the model already"
    (install,) = dst.bodies[:1]
    assert install["name"] == "tiny.gguf" and install.get("format", "gguf") == "gguf"
    assert install["url"] == f"{src_url}/api/v1/models/files/tiny.gguf"
    assert install["headers"] == {"Authorization": "Bearer ck"} and install["size"] == 1000
    assert url_job["state"] == "completed"
    assert dst.bodies[1]["url"] == "http://files.example/big.gguf"
    assert dst.bodies[1]["sha256"] == "ab" * 32 and "headers" not in dst.bodies[1]
    assert no_url == 400 and e1["error"]["param"] == "url"
    assert no_from == 400 and e2["error"]["param"] == "from"
    assert not_there == 404 and e3["error"]["code"] == "model_not_found"
    assert no_reg == 404 and e4["error"]["code"] == "registry_model_not_found"
    assert bad_source == 400
    # These workers pull files, not names.
    assert ollama == 400 and e5["error"]["code"] == "no_targets"
