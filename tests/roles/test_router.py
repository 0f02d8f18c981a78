"""The router with several fake workers on loopback, driven by the openai SDK and aiohttp."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import openai
import pytest

from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import worker as fake_worker
from tests.fakes.worker import KNOBS

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def workers(aiohttp_server):
    """start(name, models, cpu=None, port=None) -> (server, url, knobs)"""

    async def start(name, models=("m1",), cpu=None, port=None):
        server = await aiohttp_server(fake_worker.make_app(name, list(models), cpu),
                                      port=port or free_port())
        return server, url_of(server), server.app[KNOBS]

    return start


def router(tmp_path, urls, **flags):
    return run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=",".join(urls),
                      **flags)


async def _ask(s, base, model="m1", **extra):
    async with s.post(base + "/v1/chat/completions",
                      json={"model": model, "messages": MSG, **extra}) as r:
        return r.status, r.headers.copy(), await r.read()


async def test_round_robin_is_an_exact_rotation(workers, tmp_path):
    ws = [await workers(f"w{i}") for i in range(3)]
    async with router(tmp_path, [w[1] for w in ws], strategy="round_robin") as urls:
        async with aiohttp.ClientSession() as s:
            seq = [(await _ask(s, urls["router"]))[1]["X-Eldric-Worker"] for _ in range(9)]
    ring = sorted(w[1] for w in ws)
    start = ring.index(seq[0])
    assert seq == [ring[(start + i) % 3] for i in range(9)]
    assert all(w[2].hits == 3 for w in ws)


async def test_least_connections_avoids_the_busy_worker(workers, tmp_path):
    (_, ua, ka), (_, ub, kb) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="least_connections") as urls:
        async with aiohttp.ClientSession() as s:
            ka.delay = kb.delay = 1.0
            slow = asyncio.create_task(_ask(s, urls["router"]))
            await until(lambda: ka.hits + kb.hits)  # the slow request is on one of them
            busy = "a" if ka.hits else "b"
            ka.delay = kb.delay = 0
            seq = [(await _ask(s, urls["router"]))[1]["X-Eldric-Worker"] for _ in range(5)]
            await slow
    free_url = ub if busy == "a" else ua
    assert seq == [free_url] * 5


async def test_latency_based_prefers_the_fastest(workers, tmp_path):
    (_, ua, ka), (_, ub, _) = await workers("slow"), await workers("fast")
    ka.delay = 0.08
    async with router(tmp_path, [ua, ub], strategy="latency_based") as urls:
        async with aiohttp.ClientSession() as s:
            first = (await _ask(s, urls["router"]))[1]["X-Eldric-Route-Reason"]
            seq = [(await _ask(s, urls["router"]))[1]["X-Eldric-Worker"] for _ in range(10)]
    assert "fell back to round_robin" in first  # nothing measured yet: it says so
    assert seq.count(ub) >= 8


async def test_load_based_prefers_the_least_loaded(workers, tmp_path):
    (_, ua, _), (_, ub, _) = await workers("busy", cpu=90.0), await workers("idle", cpu=10.0)
    async with router(tmp_path, [ua, ub], strategy="load_based") as urls:
        async with aiohttp.ClientSession() as s:
            seq = [(await _ask(s, urls["router"]))[1] for _ in range(6)]
    assert [h["X-Eldric-Worker"] for h in seq] == [ub] * 6
    assert seq[0]["X-Eldric-Strategy"] == "load_based"
    assert seq[0]["X-Eldric-Route-Reason"].startswith("load_based: score")


async def test_random_uses_every_worker(workers, tmp_path):
    ws = [await workers(f"w{i}") for i in range(2)]
    async with router(tmp_path, [w[1] for w in ws], strategy="random") as urls:
        async with aiohttp.ClientSession() as s:
            seq = [(await _ask(s, urls["router"]))[1]["X-Eldric-Worker"] for _ in range(40)]
    assert set(seq) == {ws[0][1], ws[1][1]}


async def test_per_model_routing_aliases_and_unknown_model(workers, tmp_path):
    (_, ua, ka), (_, ub, kb) = await workers("a", ["llama"]), await workers("b", ["qwen"])
    async with router(tmp_path, [ua, ub], strategy="round_robin") as urls:
        client = openai.AsyncOpenAI(base_url=urls["router"] + "/v1", api_key="x")
        for _ in range(3):
            reply = await client.chat.completions.create(model="qwen", messages=MSG)
            assert reply.choices[0].message.content == "from b"
        assert ka.hits == 0 and kb.hits == 3
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="gpt-9", messages=MSG)
        assert info.value.code == "model_not_found"
        assert "llama" in info.value.message and "qwen" in info.value.message
        ids = sorted([m.id async for m in client.models.list()])
        assert ids == ["llama", "qwen"]
        await client.close()


async def test_alias_rewrites_the_model(workers, tmp_path):
    _, ua, ka = await workers("a", ["llama3.2:3b"])
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=ua,
                          aliases='{"gpt-4o": "llama3.2:3b"}') as urls:
        async with aiohttp.ClientSession() as s:
            status, headers, body = await _ask(s, urls["router"], model="gpt-4o")
            async with s.get(urls["router"] + "/v1/models") as r:
                ids = [m["id"] for m in (await r.json())["data"]]
    assert status == 200 and headers["X-Eldric-Model"] == "llama3.2:3b"
    assert ka.bodies[-1]["model"] == "llama3.2:3b"  # rewritten through the core's hook
    assert ka.bodies[-1]["messages"] == MSG  # the rest untouched
    assert ids == ["llama3.2:3b", "gpt-4o"]


async def test_streaming_through_the_router_is_byte_identical(workers, tmp_path):
    server, ua, _ = await workers("a")
    body = {"model": "m1", "messages": MSG, "stream": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(ua + "/v1/chat/completions", json=body) as r:
            direct = await r.read()
        async with router(tmp_path, [ua]) as urls:
            async with s.post(urls["router"] + "/v1/chat/completions", json=body) as r:
                assert r.headers["Content-Type"] == "text/event-stream"
                relayed = await r.read()
    # The fake stamps `created` with the current second, which may tick between the two
    # requests: compare with that masked only.
    mask = lambda b: re.sub(rb'"created": \d+', b'"created": T', b)  # noqa: E731
    assert mask(relayed) == mask(direct) and b'"created": T' in mask(direct)


async def test_killed_worker_fails_no_request_and_comes_back(workers, tmp_path):
    (sa, ua, _), (_, ub, _) = await workers("a"), await workers("b")
    port_a = sa.port
    async with router(tmp_path, [ua, ub], strategy="round_robin", health_interval=100) as urls:
        async with aiohttp.ClientSession() as s:
            statuses = []
            for i in range(30):
                if i == 10:
                    await sa.close()  # worker a dies under load
                statuses.append((await _ask(s, urls["router"]))[0])
            assert statuses == [200] * 30  # failover before the first byte: nobody saw it
            async with s.get(urls["router"] + "/api/v1/workers") as r:
                states = {w["id"]: w for w in (await r.json())["workers"]}
            assert states[ua]["healthy"] is False and states[ub]["healthy"] is True
            # a comes back on the same port: the health check returns it to rotation.
            server2, _, _ = await workers("a", port=port_a)
            for _ in range(50):
                async with s.get(urls["router"] + "/api/v1/workers") as r:
                    if {w["id"]: w for w in (await r.json())["workers"]}[ua]["healthy"]:
                        break
                await asyncio.sleep(0.05)
            seq = [(await _ask(s, urls["router"]))[1]["X-Eldric-Worker"] for _ in range(4)]
            assert ua in seq and ub in seq
            async with s.get(urls["router"] + "/metrics") as r:
                metrics = await r.text()
    assert f'eldric_upstream_retries_total{{role="router",upstream="{ua}"}}' in metrics
    assert 'eldric_route_selections_total{role="router",strategy="round_robin"' in metrics


async def test_5xx_retried_then_ranked_last_but_never_ejected_by_requests(workers, tmp_path):
    """A client's requests cannot take a healthy worker out of rotation: a worker whose
    replies fail max_failures times in a row is ranked last (and checked); it stays in
    rotation while its /health passes."""
    (_, ua, ka), (_, ub, kb) = await workers("a"), await workers("b")
    ka.fail_status = 500
    async with router(tmp_path, [ua, ub], strategy="round_robin", max_failures=3,
                      health_interval=60000) as urls:
        async with aiohttp.ClientSession() as s:
            results = [await _ask(s, urls["router"]) for _ in range(8)]
            assert all(st == 200 for st, _, _ in results)
            assert all(h["X-Eldric-Worker"] == ub for _, h, _ in results)
            assert ka.hits == 3  # ranked last after 3 failures in a row, then not needed
            assert any("attempt 2 after" in h["X-Eldric-Route-Reason"] for _, h, _ in results)
            assert any("ranked last" in h["X-Eldric-Route-Reason"] for _, h, _ in results)
            # A client error is relayed as it is, never retried, and ejects nobody.
            kb.fail_status = 400
            hits = kb.hits
            for _ in range(5):
                status, _, body = await _ask(s, urls["router"])
                assert status == 400 and json.loads(body)["error"]["message"] == "b failing"
            assert kb.hits == hits + 5
            # b answers 400s, a is suspect: a is still tried when b cannot answer.
            kb.fail_status = 503
            status, headers, _ = await _ask(s, urls["router"])
            assert status == 503 and ka.hits == 4
            async with s.get(urls["router"] + "/api/v1/workers") as r:
                states = {w["id"]: w["healthy"] for w in (await r.json())["workers"]}
            assert states == {ua: True, ub: True}  # both /health still pass


async def test_failing_worker_whose_check_fails_is_taken_out(workers, tmp_path):
    (_, ua, ka), (_, ub, _) = await workers("a"), await workers("b")
    ka.fail_status = 500
    async with router(tmp_path, [ua, ub], strategy="round_robin", max_failures=2,
                      health_interval=60000) as urls:
        async with aiohttp.ClientSession() as s:
            async def a_state():
                async with s.get(urls["router"] + "/api/v1/workers") as r:
                    return {w["id"]: w["healthy"] for w in (await r.json())["workers"]}[ua]

            assert await a_state() is True
            ka.health_status = 503  # its own /health agrees it is broken
            for _ in range(4):
                assert (await _ask(s, urls["router"]))[0] == 200

            async def a_out() -> bool:
                return await a_state() is False

            await until(a_out, timeout=3)  # the confirming check took it out


async def test_all_attempts_failed_is_503_naming_them(workers, tmp_path):
    (_, ua, ka), (_, ub, kb) = await workers("a"), await workers("b")
    ka.fail_status = kb.fail_status = 502
    async with router(tmp_path, [ua, ub], strategy="round_robin") as urls:
        async with aiohttp.ClientSession() as s:
            status, headers, body = await _ask(s, urls["router"])
    assert status == 503
    message = json.loads(body)["error"]["message"]
    assert ua in message and ub in message and "a failing" in message


async def test_fallback_chain(workers, tmp_path):
    (sa, ua, ka), (_, ub, kb) = await workers("a", ["big"]), await workers("b", ["small"])
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=f"{ua},{ub}",
                          fallbacks='{"big": ["small"]}') as urls:
        async with aiohttp.ClientSession() as s:
            status, headers, _ = await _ask(s, urls["router"], model="big")
            assert status == 200 and headers["X-Eldric-Model"] == "big"
            ka.fail_status = 503  # every attempt on "big" fails: the chain moves on
            status, headers, body = await _ask(s, urls["router"], model="big")
            assert status == 200 and headers["X-Eldric-Model"] == "small"
            assert json.loads(body)["choices"][0]["message"]["content"] == "from b"
            assert kb.bodies[-1]["model"] == "small"
            await sa.close()  # no worker serving "big" is healthy now
            status, headers, _ = await _ask(s, urls["router"], model="big")
            assert status == 200 and headers["X-Eldric-Model"] == "small"


async def test_backpressure_waits_then_503_with_retry_after(workers, tmp_path):
    _, ua, ka = await workers("a")
    ka.max_concurrency = 1
    ka.delay = 0.6
    async with router(tmp_path, [ua], queue_timeout=200) as urls:
        async with aiohttp.ClientSession() as s:
            first = asyncio.create_task(_ask(s, urls["router"]))
            await until(lambda: ka.hits)  # the first holds the only slot
            status, headers, body = await _ask(s, urls["router"])
            assert status == 503 and headers["Retry-After"] == "1"
            assert json.loads(body)["error"]["code"] == "capacity_exceeded"
            assert (await first)[0] == 200
    async with router(tmp_path, [ua], queue_timeout=3000) as urls:
        async with aiohttp.ClientSession() as s:
            ka.delay = 0.3
            results = await asyncio.gather(*(_ask(s, urls["router"]) for _ in range(3)))
            assert [r[0] for r in results] == [200, 200, 200]  # queued, then served in turn


async def test_runtime_strategy_change_and_admin_key(workers, tmp_path):
    _, ua, _ = await workers("a")
    async with router(tmp_path, [ua], admin_key="adm") as urls:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["router"] + "/api/v1/config") as r:
                assert (await r.json())["strategy"] == "load_based"
            async with s.post(urls["router"] + "/api/v1/config",
                              json={"strategy": "random"}) as r:
                assert r.status == 401
            hdr = {"Authorization": "Bearer adm"}
            async with s.post(urls["router"] + "/api/v1/config", json={"strategy": "fastest"},
                              headers=hdr) as r:
                assert r.status == 400 and (await r.json())["error"]["param"] == "strategy"
            async with s.post(urls["router"] + "/api/v1/config", json={"strategy": "random"},
                              headers=hdr) as r:
                assert r.status == 200
            async with s.get(urls["router"] + "/api/v1/config") as r:
                cfg = await r.json()
            assert cfg["strategy"] == "random" and cfg["strategy_source"] == "runtime"
            _, headers, _ = await _ask(s, urls["router"])
            assert headers["X-Eldric-Strategy"] == "random"


async def test_controller_sync(workers, aiohttp_server, tmp_path):
    from tests.fakes import controller as fake_controller
    from tests.fakes.controller import STATE

    ctl = await aiohttp_server(fake_controller.make_app())
    st = ctl.app[STATE]
    st.router_config = {"strategy": "round_robin"}
    (_, ua, _), (_, ub, kb) = await workers("a"), await workers("b")
    st.workers["wrk-a"] = {"id": "wrk-a", "worker_type": "inference", "url": ua, "models": ["m1"]}
    st.workers["dat-1"] = {"id": "dat-1", "worker_type": "data", "url": ub, "models": []}
    # A newer controller may list types and states this router does not know: skipped.
    st.workers["qtm-1"] = {"id": "qtm-1", "worker_type": "quantum", "status": "entangled",
                           "url": ub, "models": ["m1"]}
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1",
                          controller=url_of(ctl), sync_interval=100) as urls:
        async with aiohttp.ClientSession() as s:
            status, headers, _ = await _ask(s, urls["router"])
            assert status == 200 and headers["X-Eldric-Worker"] == "wrk-a"
            assert headers["X-Eldric-Strategy"] == "round_robin"  # from the controller
            # A worker that registers later shows up; a data worker is never routed to.
            st.workers["wrk-b"] = {"id": "wrk-b", "worker_type": "inference", "url": ub,
                                   "models": ["m1"]}
            for _ in range(50):
                await asyncio.sleep(0.05)
                async with s.get(urls["router"] + "/api/v1/workers") as r:
                    ids = {w["id"] for w in (await r.json())["workers"]}
                if "wrk-b" in ids:
                    break
            assert ids == {"wrk-a", "wrk-b"}
            seq = {(await _ask(s, urls["router"]))[1]["X-Eldric-Worker"] for _ in range(4)}
            assert seq == {"wrk-a", "wrk-b"}
            # Controller down: the router keeps routing on the last list.
            await ctl.close()
            await asyncio.sleep(0.3)
            assert (await _ask(s, urls["router"]))[0] == 200
    assert kb.hits >= 1


async def test_controller_removal_and_strategy_pinned_by_flag(workers, aiohttp_server, tmp_path):
    from tests.fakes import controller as fake_controller
    from tests.fakes.controller import STATE

    ctl = await aiohttp_server(fake_controller.make_app())
    st = ctl.app[STATE]
    st.router_config = {"strategy": "random"}
    _, ua, _ = await workers("a")
    st.workers["wrk-a"] = {"id": "wrk-a", "worker_type": "inference", "url": ua, "models": ["m1"]}
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1", controller=url_of(ctl),
                          sync_interval=100, strategy="least_connections") as urls:
        async with aiohttp.ClientSession() as s:
            _, headers, _ = await _ask(s, urls["router"])
            assert headers["X-Eldric-Strategy"] == "least_connections"  # the flag wins
            del st.workers["wrk-a"]
            for _ in range(50):
                await asyncio.sleep(0.05)
                async with s.get(urls["router"] + "/api/v1/workers") as r:
                    if not (await r.json())["workers"]:
                        break
            status, _, body = await _ask(s, urls["router"])
            assert status == 404  # nobody serves anything now


async def test_router_health_and_detail(workers, tmp_path):
    (sa, ua, _), (_, ub, _) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], health_interval=100) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["router"] + "/health") as r:
                assert (await r.json())["status"] == "healthy"
            await sa.close()
            for _ in range(40):
                async with s.get(urls["router"] + "/health") as r:
                    body = await r.json()
                if body["status"] == "degraded":
                    break
                await asyncio.sleep(0.05)
            assert body["status"] == "degraded" and r.status == 200
            async with s.get(urls["router"] + "/api/v1/health") as r:
                detail = await r.json()
            assert sorted(u["healthy"] for u in detail["upstreams"]) == [False, True]
            assert detail["upstream_counts"] == {"healthy": 1, "unhealthy": 1}
            assert detail["role"] == "router" and detail["uptime_seconds"] > 0


async def test_an_upstream_message_with_line_breaks_stays_inside_one_header(workers, tmp_path):
    """The route reason quotes the failed attempt's message, which an upstream wrote: it
    must not break the reply's head (no injected header, no 500)."""
    (_, ua, ka), (_, ub, _) = await workers("bad\r\nX-Injected: 1"), await workers("b")
    ka.fail_status = 500
    async with router(tmp_path, [ua, ub], strategy="round_robin",
                      health_interval=60000) as urls:
        async with aiohttp.ClientSession() as s:
            results = [await _ask(s, urls["router"]) for _ in range(4)]
    assert [st for st, _, _ in results] == [200] * 4
    reasons = [h["X-Eldric-Route-Reason"] for _, h, _ in results]
    assert any("bad X-Injected: 1 failing" in r for r in reasons), reasons
    assert all("X-Injected" not in h for _, h, _ in results)


def test_the_strategy_list_is_the_one_the_controller_checks():
    from typing import get_args

    from eldric.roles.router.strategies import STRATEGIES
    from eldric.wire.cluster import StrategyName

    assert set(STRATEGIES) == set(get_args(StrategyName))


# ---------------------------------------------------------------- capability-aware routing


async def test_a_path_goes_only_to_workers_that_serve_it(workers, tmp_path):
    (_, ua, ka), (_, ub, kb) = await workers("a"), await workers("b")
    ka.paths = ["/v1/chat/completions", "/v1/responses"]
    kb.paths = ["/v1/chat/completions"]  # e.g. a cloud worker
    async with router(tmp_path, [ua, ub], strategy="round_robin") as urls:
        async with aiohttp.ClientSession() as s:
            for _ in range(10):
                async with s.post(urls["router"] + "/v1/responses",
                                  json={"model": "m1", "input": "hi"}) as r:
                    assert r.status == 200 and r.headers["X-Eldric-Worker"] == ua
                    assert (await r.json())["served_by"] == "a"
            # retrieving a stored response names no model: still only where it is served
            async with s.get(urls["router"] + "/v1/responses/resp_1") as r:
                assert r.status == 200 and (await r.json())["served_by"] == "a"
            # chat still rotates over both
            seen = {(await _ask(s, urls["router"]))[1]["X-Eldric-Worker"] for _ in range(4)}
            assert seen == {ua, ub}
            # a path nobody serves: 404 naming it, with the routing headers
            async with s.post(urls["router"] + "/v1/rerank",
                              json={"model": "m1", "query": "q", "documents": ["d"]}) as r:
                err = (await r.json())["error"]
                assert r.status == 404 and err["code"] == "path_not_served"
                assert "/v1/rerank" in err["message"]
                assert r.headers["X-Eldric-Strategy"] == "round_robin"
                assert r.headers["X-Eldric-Model"] == "m1"
            # a path outside every API family workers advertise: anyone, as before
            served_by = set()
            for _ in range(4):
                async with s.get(urls["router"] + "/v1/files") as r:
                    assert r.status == 200
                    served_by.add((await r.json())["served_by"])
            assert served_by == {"a", "b"}
    assert [p for p in kb.seen if p != "/v1/files"] == []  # b never got what it lacks
    assert ka.seen.count("/v1/responses") == 10


async def test_not_implemented_is_relayed_and_never_ejects(workers, tmp_path):
    """llama.cpp answers 501 to /v1/embeddings when they are off: that is "not here", not
    "broken". 30 such requests (what 10 openai SDK calls with 2 retries each send) must
    leave the worker in rotation and its chat served."""
    (_, ua, ka), = [await workers("a")]
    ka.not_here = {"/v1/embeddings"}
    async with router(tmp_path, [ua], max_failures=2, health_interval=60000) as urls:
        async with aiohttp.ClientSession() as s:
            for _ in range(30):
                async with s.post(urls["router"] + "/v1/embeddings",
                                  json={"model": "m1", "input": "hi"}) as r:
                    assert r.status == 501  # the backend's answer, not a 503
                    assert r.headers["X-Eldric-Worker"] == ua
                    assert (await r.json())["error"]["type"] == "not_supported_error"
        client = openai.AsyncOpenAI(base_url=urls["router"] + "/v1", api_key="x",
                                    max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            await client.embeddings.create(model="m1", input="hi")
        assert info.value.status_code == 501
        reply = await client.chat.completions.create(model="m1", messages=MSG)
        assert reply.choices[0].message.content == "from a"
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["router"] + "/api/v1/workers") as r:
                (w,) = (await r.json())["workers"]
        assert w["healthy"] is True and w["failures"] == 0
    assert ka.seen.count("/v1/embeddings") == 31


async def test_not_implemented_tries_another_worker(workers, tmp_path):
    (_, ua, ka), (_, ub, kb) = await workers("a"), await workers("b")
    ka.not_here = {"/v1/embeddings"}  # advertises nothing, so it is tried
    async with router(tmp_path, [ua, ub], strategy="round_robin") as urls:
        async with aiohttp.ClientSession() as s:
            for _ in range(4):
                async with s.post(urls["router"] + "/v1/embeddings",
                                  json={"model": "m1", "input": "x"}) as r:
                    assert r.status == 200 and (await r.json())["served_by"] == "b"


async def test_errors_carry_the_routing_headers(workers, tmp_path):
    (_, ua, ka), = [await workers("a")]
    async with router(tmp_path, [ua], strategy="round_robin") as urls:
        async with aiohttp.ClientSession() as s:
            for path, body in (("/v1/chat/completions", b"{nope"),
                               ("/v1/chat/completions", b'{"a": ' * 50_000)):
                async with s.post(urls["router"] + path, data=body) as r:  # at the door
                    assert r.status == 400 and r.headers["X-Eldric-Strategy"] == "round_robin"
                    code = (await r.json())["error"]["code"]
                    assert r.headers["X-Eldric-Route-Reason"] == f"not routed: {code}"
            async with s.get(urls["router"] + "/v1/models/nope") as r:
                assert r.status == 404 and r.headers["X-Eldric-Strategy"] == "round_robin"
            status, headers, _ = await _ask(s, urls["router"], model="nope")
            assert status == 404 and headers["X-Eldric-Strategy"] == "round_robin"
            assert headers["X-Eldric-Model"] == "nope"
            ka.fail_status = 502
            status, headers, _ = await _ask(s, urls["router"])
            assert status == 503 and headers["X-Eldric-Worker"] == ua
            assert headers["X-Eldric-Route-Reason"] == "all attempts failed"


async def test_models_retrieve(workers, tmp_path):
    (_, ua, _), = [await workers("a", ["m1", "org/model-x"])]
    async with router(tmp_path, [ua], aliases='{"gpt-4o": "m1"}') as urls:
        client = openai.AsyncOpenAI(base_url=urls["router"] + "/v1", api_key="x")
        assert (await client.models.retrieve("m1")).id == "m1"
        assert (await client.models.retrieve("org/model-x")).id == "org/model-x"
        assert (await client.models.retrieve("gpt-4o")).id == "gpt-4o"
        with pytest.raises(openai.NotFoundError) as info:
            await client.models.retrieve("nope")
        assert info.value.body["code"] == "model_not_found"
