"""The router's batch-priority lane (X-Eldric-Priority: batch): idle capacity only."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import worker as fake_worker
from tests.fakes.worker import KNOBS

MSG = [{"role": "user", "content": "hi"}]
BATCH = {"X-Eldric-Priority": "batch"}


@pytest.fixture
def worker(aiohttp_server):
    async def start(name="a"):
        server = await aiohttp_server(fake_worker.make_app(name, ["m1"], None), port=free_port())
        return url_of(server), server.app[KNOBS]
    return start


async def _ask(s, base, headers=None):
    async with s.post(base + "/v1/chat/completions", headers=headers or {},
                      json={"model": "m1", "messages": MSG}) as r:
        return r.status, r.headers.copy(), await r.read()


async def test_batch_admitted_when_idle_deferred_when_busy(worker, tmp_path):
    ua, ka = await worker()
    ka.max_concurrency = 1
    ka.delay = 0.5
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=ua,
                          batch_wait=100) as urls:
        async with aiohttp.ClientSession() as s:
            status, headers, _ = await _ask(s, urls["router"], BATCH)  # idle: admitted
            assert status == 200
            assert headers["X-Eldric-Route-Reason"].startswith("batch: idle capacity")
            busy = asyncio.create_task(_ask(s, urls["router"]))  # interactive holds the slot
            await until(lambda: ka.hits >= 2)
            status, headers, body = await _ask(s, urls["router"], BATCH)
            assert status == 503 and headers["Retry-After"] == "1"
            assert json.loads(body)["error"]["code"] == "batch_deferred"
            assert (await busy)[0] == 200
            # the deferral took nothing out of rotation: the next request is served
            assert (await _ask(s, urls["router"]))[0] == 200
            async with s.get(urls["router"] + "/health") as r:
                assert r.status == 200
            assert (await _ask(s, urls["router"], BATCH))[0] == 200
            async with s.get(urls["router"] + "/metrics") as r:
                text = await r.text()
            assert "eldric_router_batch_admitted_total 2.0" in text
            assert "eldric_router_batch_deferred_total 1.0" in text
            assert "eldric_router_batch_in_flight 0.0" in text


async def test_interactive_waits_behind_at_most_one_batch(worker, tmp_path):
    ua, ka = await worker()
    ka.max_concurrency = 1
    ka.delay = 0.3
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=ua,
                          batch_wait=5000) as urls:
        async with aiohttp.ClientSession() as s:
            batches = [asyncio.create_task(_ask(s, urls["router"], BATCH)) for _ in range(4)]
            await until(lambda: ka.hits >= 1)
            t0 = asyncio.get_running_loop().time()
            status, _, _ = await _ask(s, urls["router"])
            took = asyncio.get_running_loop().time() - t0
            assert status == 200
            assert took < 0.3 * 2 + 0.25  # one batch request's time, then its own
            assert all(r[0] == 200 for r in await asyncio.gather(*batches))


async def test_no_interactive_traffic_runs_batch_slots(worker, tmp_path):
    ua, ka = await worker()
    ka.delay = 0.3
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=ua,
                          batch_wait=3000, batch_slots=2, max_concurrency=4) as urls:
        async with aiohttp.ClientSession() as s:
            t0 = asyncio.get_running_loop().time()
            got = await asyncio.gather(*(_ask(s, urls["router"], BATCH) for _ in range(4)))
            took = asyncio.get_running_loop().time() - t0
    assert all(r[0] == 200 for r in got)
    assert 0.55 < took < 0.3 * 3  # two at a time: two rounds, not one, not four


async def test_the_edge_relays_batch_deferred_and_keeps_the_router(worker, tmp_path):
    """Through the edge: the router's 503 batch_deferred comes back as sent (ToRouters'
    "come back later"), and the router stays in rotation for the next request."""
    ua, ka = await worker()
    ka.max_concurrency = 1
    ka.delay = 0.5
    async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1", workers=ua,
                          batch_wait=100) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], api_key="k") as e:
        auth = {"Authorization": "Bearer k"}
        async with aiohttp.ClientSession() as s:
            busy = asyncio.create_task(_ask(s, e["edge"], auth))
            await until(lambda: ka.hits >= 1)
            status, headers, body = await _ask(s, e["edge"], {**auth, **BATCH})
            assert status == 503 and headers["Retry-After"] == "1"
            assert json.loads(body)["error"]["code"] == "batch_deferred"
            assert (await busy)[0] == 200
            status, headers, _ = await _ask(s, e["edge"], {**auth, **BATCH})
            assert status == 200
