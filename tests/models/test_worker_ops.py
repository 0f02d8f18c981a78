"""A worker's model operations outlive their callers: a caller that leaves, re-attaches by
op_id (POST again or GET ops/{id}?follow=true), cancels; unknown ops, bad bodies, what a
backend cannot do, and the cluster key."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import run_eldric, until, url_of
from tests.fakes.ollama_models import Models
from tests.models.workers import lines, ollama_worker, op

MODEL = "llama3.2:1b"


def _slow() -> Models:
    return Models(chunk=100_000, tick=0.02)  # ~1.5 s for MODEL


async def test_a_caller_that_leaves_mid_stream_leaves_the_op_running(aiohttp_server, tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path, _slow()) as w, aiohttp.ClientSession() as s:
        async with s.post(w.url + "/api/v1/models/pull", json={"model": MODEL, "op_id": "op-l"}) as r:
            first = await lines(r, limit=2)
        assert first[0]["op_id"] == "op-l"
        assert (await op(s, w.url, "op-l"))["state"] not in ("completed", "failed")
        done = await until(lambda: _ended(s, w.url, "op-l"), timeout=10)
        assert done["state"] == "completed"
        assert ("disconnect", MODEL) not in w.models.seen  # Ollama's pull was never cut
        assert w.pulls(MODEL) == 1


async def _ended(s: aiohttp.ClientSession, url: str, op_id: str) -> dict | None:
    got = await op(s, url, op_id)
    return got if got["state"] in ("completed", "failed", "cancelled") else None


async def test_the_same_op_id_joins_the_running_op(aiohttp_server, tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path, _slow()) as w, aiohttp.ClientSession() as s:
        async with s.post(w.url + "/api/v1/models/pull", json={"model": MODEL, "op_id": "op-j"}) as r:
            await lines(r, limit=3)
        await until(lambda: _moved(s, w.url, "op-j"))
        async with s.post(w.url + "/api/v1/models/pull", json={"model": MODEL, "op_id": "op-j"}) as r:
            again = await lines(r)
        assert again[0]["completed_bytes"] > 0  # from its current snapshot, not anew
        assert again[-1]["state"] == "completed"
        assert w.pulls(MODEL) == 1  # one pull at Ollama


async def _moved(s: aiohttp.ClientSession, url: str, op_id: str) -> bool:
    return (await op(s, url, op_id))["completed_bytes"] > 0


async def test_follow_re_attaches_and_reads_to_the_end(aiohttp_server, tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path, _slow()) as w, aiohttp.ClientSession() as s:
        async with s.post(w.url + "/api/v1/models/pull", json={"model": MODEL, "op_id": "op-f"}) as r:
            await lines(r, limit=1)
        async with s.get(w.url + "/api/v1/models/ops/op-f?follow=true") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
            got = await lines(r)
        assert got[-1]["state"] == "completed"
        async with s.get(w.url + "/api/v1/models/ops/op-f?follow=true") as r:  # finished: kept
            assert [g["state"] for g in await lines(r)] == ["completed"]


async def test_cancel_stops_the_backend_pull(aiohttp_server, tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path, _slow()) as w, aiohttp.ClientSession() as s:
        async with s.post(w.url + "/api/v1/models/pull", json={"model": MODEL, "op_id": "op-c"}) as r:
            await lines(r, limit=2)
            async with s.delete(w.url + "/api/v1/models/ops/op-c") as d:
                assert d.status == 200
                assert (await d.json())["state"] == "cancelled"
            rest = await lines(r)
        assert rest[-1]["state"] == "cancelled"  # the follower saw the end too
        await until(lambda: ("disconnect", MODEL) in w.models.seen)
        assert (await op(s, w.url, "op-c"))["state"] == "cancelled"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_an_unknown_op_is_404(aiohttp_server, tmp_path, method):
    async with ollama_worker(aiohttp_server, tmp_path) as w, aiohttp.ClientSession() as s, \
            s.request(method, w.url + "/api/v1/models/ops/op-nope") as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "op_not_found"


@pytest.mark.parametrize("path,body", [
    ("pull", b"{not json"), ("pull", b'{"op_id": "x"}'), ("pull", b'{"model": "m", "x": 1}'),
    ("pull", b'{"model": ""}'), ("install", b'{"name": "m"}'), ("show", b"[]"),
    # an op id goes into log lines and URL paths: bounded, no slash
    ("pull", b'{"model": "m", "op_id": "' + b"x" * 257 + b'"}'),
    ("pull", b'{"model": "m", "op_id": "a/b"}'), ("pull", b'{"model": "m", "op_id": ""}'),
])
async def test_a_bad_body_is_400(aiohttp_server, tmp_path, path, body):
    async with ollama_worker(aiohttp_server, tmp_path) as w, aiohttp.ClientSession() as s, \
            s.post(f"{w.url}/api/v1/models/{path}", data=body) as r:
        assert r.status == 400
        err = (await r.json())["error"]
        assert err["code"] == "invalid_request" and err["type"] == "invalid_request_error"


async def test_a_backend_that_cannot_pull_says_so_before_any_stream(aiohttp_server, tmp_path):
    async with aiohttp.ClientSession() as s:
        async with run_eldric("worker", tmp_path / "m", port=0, bind="127.0.0.1",
                              backend="mock") as m:
            for path, body in (("pull", {"model": MODEL}),
                               ("install", {"name": "x", "url": "http://127.0.0.1:9/x.gguf"})):
                async with s.post(f"{m['worker']}/api/v1/models/{path}", json=body) as r:
                    assert r.status == 400
                    assert (await r.json())["error"]["code"] == f"{path}_unsupported"
        async with ollama_worker(aiohttp_server, tmp_path / "o") as w, \
                s.post(w.url + "/api/v1/models/pull",
                       json={"model": MODEL, "url": "http://127.0.0.1:9/x.gguf"}) as r:
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "pull_unsupported"


async def test_the_cluster_key_is_demanded(aiohttp_server, tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path, api_key="k1") as w, \
            aiohttp.ClientSession() as s:
        async with s.get(w.url + "/api/v1/models/local") as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_api_key"
        async with s.get(w.url + "/api/v1/models/local",
                         headers={"Authorization": "Bearer k1"}) as r:
            assert r.status == 200


async def test_delete_and_show(aiohttp_server, tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path) as w, aiohttp.ClientSession() as s:
        async with s.post(w.ollama + "/api/show", json={"model": "llama3.2:3b"}) as r:
            own = await r.read()
        async with s.post(w.url + "/api/v1/models/show", json={"model": "llama3.2:3b"}) as r:
            assert r.status == 200 and await r.read() == own  # relayed untouched
        async with s.delete(w.url + "/api/v1/models/llama3.2:3b") as r:
            assert r.status == 200 and await r.json() == {"deleted": "llama3.2:3b"}
        async with s.get(w.url + "/health") as r:  # refreshed at once
            assert "llama3.2:3b" not in (await r.json())["models"]
        async with s.delete(w.url + "/api/v1/models/llama3.2:3b") as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "model_not_found"
        async with s.post(w.url + "/api/v1/models/show", json={"model": "llama3.2:3b"}) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "model_not_found"


async def test_a_completed_op_heartbeats_at_once(aiohttp_server, fake_controller_server,
                                                 tmp_path):
    from tests.fakes.controller import STATE

    state = fake_controller_server.app[STATE]
    async with ollama_worker(aiohttp_server, tmp_path, controller=url_of(fake_controller_server),
                             heartbeat_interval=60_000) as w, aiohttp.ClientSession() as s:
        await until(lambda: state.workers)
        registered = state.registrations[-1]
        assert registered["model_ops"]["pull"] == ["ollama"]
        await _pull_all(s, w.url)
        beat = await until(lambda: [b for _, b in state.heartbeats if MODEL in b["models"]],
                           timeout=3)
        assert beat


async def _pull_all(s: aiohttp.ClientSession, url: str) -> None:
    async with s.post(url + "/api/v1/models/pull", json={"model": MODEL}) as r:
        assert (await lines(r))[-1]["state"] == "completed"


async def test_a_stopping_worker_cuts_its_streams_and_stops_its_ops(aiohttp_server, tmp_path):
    import asyncio
    import time

    from eldric.wire.models import TERMINAL

    models = Models(stall={MODEL: 500_000})
    async with aiohttp.ClientSession() as s:
        worker = ollama_worker(aiohttp_server, tmp_path, models)
        w = await worker.__aenter__()
        r = await s.post(w.url + "/api/v1/models/pull", json={"model": MODEL})
        reader = asyncio.create_task(lines(r))
        await until(lambda: models.partial)  # Ollama's pull is stalled
        started = time.monotonic()
        await worker.__aexit__(None, None, None)
        assert time.monotonic() - started < 5  # not the 30 s grace period
        got = await asyncio.wait_for(reader, 5)
        assert got and got[-1]["state"] not in TERMINAL  # cut: the caller re-attaches
        await until(lambda: ("disconnect", MODEL) in models.seen)
