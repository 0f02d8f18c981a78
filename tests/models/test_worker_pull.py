"""A worker's POST /api/v1/models/pull on an Ollama backend: eldric's OpProgress lines
from Ollama's /api/pull, its failures (in-band error after 200, a stall, a backend down),
and what the worker knows after it (its model list, /health, /api/v1/models/local)."""

from __future__ import annotations

import aiohttp

from eldric.wire.models import TERMINAL
from tests.conftest import free_port, run_eldric, until
from tests.fakes.ollama_models import Models
from tests.models.workers import ollama_worker, op, pull

MODEL = "llama3.2:1b"


async def test_pull_streams_progress_to_completed_and_the_model_is_served(aiohttp_server,
                                                                           tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path) as w, aiohttp.ClientSession() as s:
        got = await pull(s, w.url, model=MODEL, op_id="op-a")
        assert got[0]["state"] in ("queued", "pulling") and got[0]["op_id"] == "op-a"
        assert got[-1]["state"] == "completed" and got[-1]["error"] is None
        assert [g["state"] for g in got[:-1] if g["state"] in TERMINAL] == []
        moving = [g for g in got if g["state"] == "pulling" and g["total_bytes"]]
        assert moving, got
        done = [g["completed_bytes"] for g in got]
        assert done == sorted(done)  # never backwards
        assert got[-1]["total_bytes"] == sum(Models().library[MODEL])
        assert len(got) < 40  # throttled: not one line per Ollama line
        assert (await op(s, w.url, "op-a"))["state"] == "completed"
        async with s.get(w.url + "/health") as r:  # refreshed at once, not next period
            assert MODEL in (await r.json())["models"]
        async with s.get(w.url + "/api/v1/models/local") as r:
            local = await r.json()
        assert local["backend"] == "ollama"
        assert MODEL in [m["name"] for m in local["models"]]


async def test_health_says_what_the_worker_can_do_with_models(aiohttp_server, tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path / "o") as w, aiohttp.ClientSession() as s:
        async with s.get(w.url + "/health") as r:
            assert (await r.json())["model_ops"] == {"pull": ["ollama"], "install": True,
                                                      "delete": True}
        async with run_eldric("worker", tmp_path / "m", port=0, bind="127.0.0.1",
                              backend="mock") as m, s.get(m["worker"] + "/health") as r:
            assert (await r.json())["model_ops"] == {}


async def test_a_model_ollama_lacks_fails_in_band(aiohttp_server, tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path) as w, aiohttp.ClientSession() as s:
        got = await pull(s, w.url, model="no-such-model")
    assert got[-1]["state"] == "failed" and got[-1]["code"] == "backend_error"
    assert got[-1]["error"]


async def test_an_error_line_mid_pull_fails_the_op_after_bytes_moved(aiohttp_server, tmp_path):
    models = Models(fail={MODEL: 1_500_000})
    async with ollama_worker(aiohttp_server, tmp_path, models) as w, aiohttp.ClientSession() as s:
        got = await pull(s, w.url, model=MODEL)
        assert got[-1]["state"] == "failed" and got[-1]["code"] == "backend_error"
        assert max(g["completed_bytes"] for g in got) > 0
        async with s.get(w.url + "/api/v1/models/local") as r:
            assert MODEL not in [m["name"] for m in (await r.json())["models"]]


async def test_a_stalled_pull_fails_after_the_idle_timeout(aiohttp_server, tmp_path):
    models = Models(stall={MODEL: 1_000_000})
    async with ollama_worker(aiohttp_server, tmp_path, models, idle_timeout=500) as w, \
            aiohttp.ClientSession() as s:
        got = await pull(s, w.url, model=MODEL)
        assert got[-1]["state"] == "failed" and got[-1]["code"] == "backend_error"
        assert "stalled" in got[-1]["error"]
        await until(lambda: ("disconnect", MODEL) in w.models.seen)  # the pull was let go


async def test_a_backend_that_is_down_fails_the_op_and_the_requests_get_503(tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="ollama",
                          backend_url=down) as urls, aiohttp.ClientSession() as s:
        w = urls["worker"]
        got = await pull(s, w, model=MODEL)
        assert got[-1]["state"] == "failed" and got[-1]["code"] == "backend_error"
        for method, path, body in (("GET", "/api/v1/models/local", None),
                                   ("POST", "/api/v1/models/show", {"model": MODEL}),
                                   ("DELETE", f"/api/v1/models/{MODEL}", None)):
            async with s.request(method, w + path, json=body) as r:
                assert r.status == 503, path
                assert (await r.json())["error"]["code"] == "upstream_unavailable"


async def test_a_fast_stream_of_ollama_lines_is_throttled(aiohttp_server, tmp_path):
    models = Models(chunk=20_000, tick=0.004)  # ~150 Ollama lines in ~1 s
    async with ollama_worker(aiohttp_server, tmp_path, models) as w, aiohttp.ClientSession() as s:
        got = await pull(s, w.url, model=MODEL)
    assert got[-1]["state"] == "completed"
    pulling = [g for g in got if g["state"] == "pulling"]
    assert 2 <= len(pulling) <= 6  # about two a second while bytes move, not 150


async def test_a_cloud_worker_pulls_to_its_ollama(aiohttp_server, tmp_path):
    from tests.conftest import run_cloud, url_of
    from tests.fakes import ollama as fake_ollama

    server = await aiohttp_server(fake_ollama.make_app())
    async with run_cloud(tmp_path, f"ollama:{url_of(server)}") as urls, \
            aiohttp.ClientSession() as s:
        c = urls["cloud"]
        async with s.get(c + "/health") as r:
            assert (await r.json())["model_ops"]["pull"] == ["ollama"]
        got = await pull(s, c, model=MODEL)
        assert got[-1]["state"] == "completed", got
        async with s.get(c + "/v1/models") as r:  # probed at once
            assert MODEL in [m["id"] for m in (await r.json())["data"]]
        async with s.delete(f"{c}/api/v1/models/{MODEL}") as r:
            assert r.status == 200


async def test_a_cloud_worker_without_an_ollama_cannot_pull(fake_openai_server, tmp_path):
    from tests.conftest import run_cloud, url_of

    async with run_cloud(tmp_path, f"alpha:{url_of(fake_openai_server)}") as urls, \
            aiohttp.ClientSession() as s:
        async with s.get(urls["cloud"] + "/health") as r:
            assert (await r.json())["model_ops"] == {}
        async with s.post(urls["cloud"] + "/api/v1/models/pull", json={"model": MODEL}) as r:
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "pull_unsupported"
