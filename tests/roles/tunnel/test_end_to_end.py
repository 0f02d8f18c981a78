"""A worker behind the tunnel in a whole cluster (tests/roles/tunnel/cluster.py): the
client calls the edge, the router (told only the controller) reaches the worker through
the edge's forward endpoint and the worker's own long-polls; nobody is told the worker's
port. Streamed and whole replies, and the faults: the worker killed mid-stream, its polls
stopped (queued requests fail over to a direct worker), the edge restarted (same id), a
key without the register scope, 200 streams through one tunnel."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp

from tests.conftest import free_port, run_eldric, until
from tests.roles.tunnel.cluster import (CHAT, cluster, normalised, routed, worker_argv,
                                        worker_flags)
from tests.roles.tunnel.kit import PLAIN


async def test_chat_through_the_tunnel_streamed_and_not(tmp_path):
    async with cluster(tmp_path) as cl, aiohttp.ClientSession() as s, \
            run_eldric("worker", tmp_path / "w", **worker_flags(cl, mock_tokens=12)) as w:
        (t,) = await until(lambda: cl.tunnels(s))
        assert t["client"] == "home"
        (rec,) = await until(lambda: cl.workers(s))
        assert rec["url"].startswith("tunnel+http://127.0.0.1:") and rec["url"].endswith(
            "/" + t["tunnel"])
        assert rec["contributed_by"] == "home"  # the edge client whose key registered it
        assert t["worker_id"] in (None, rec["id"])
        await routed(s, cl, rec["url"])

        async with cl.chat(s) as r:
            assert r.status == 200 and r.headers["X-Eldric-Worker"] == rec["id"]
            whole = await r.json()
        async with s.post(w["worker"] + "/v1/chat/completions",
                          json={"model": "eldric-mock", "seed": 7,
                                "messages": [{"role": "user", "content": "hi"}]}) as r:
            direct_whole = await r.json()
        assert whole["choices"] == direct_whole["choices"]

        body = {"stream": True, "seed": 7}
        async with cl.chat(s, **body) as r:
            assert r.status == 200 and r.content_type == "text/event-stream"
            tunnelled = await r.read()
        # the same request asked of the worker directly, as the edge asks it: the edge's
        # meter (issue 19) adds stream_options.include_usage and drops the usage chunk the
        # client did not ask for (every other chunk keeps the "usage": null it brings)
        async with s.post(w["worker"] + "/v1/chat/completions",
                          json={"model": "eldric-mock", "stream": True, "seed": 7,
                                "stream_options": {"include_usage": True},
                                "messages": [{"role": "user", "content": "hi"}]}) as r:
            direct = await r.read()
        events = direct.split(b"\n\n")
        usage = [e for e in events if b'"choices":[]' in e]
        assert len(usage) == 1, direct
        direct = b"\n\n".join(e for e in events if e not in usage)
        assert normalised(tunnelled) == normalised(direct)
        assert tunnelled.endswith(b"data: [DONE]\n\n") and tunnelled.count(b"data: ") == 15
        # the router's health checks reach it through the tunnel too
        async with s.get(cl.router + "/api/v1/health") as r:
            assert r.status == 200


async def test_killed_mid_stream_the_caller_gets_one_error_event(tmp_path, eldric_proc):
    async with cluster(tmp_path) as cl, aiohttp.ClientSession() as s:
        p = eldric_proc(*worker_argv(cl, mock_tokens=100, mock_token_delay=100,
                                     data_dir=tmp_path / "w"))
        (rec,) = await until(lambda: cl.workers(s), timeout=15)
        await routed(s, cl, rec["url"])
        async with cl.chat(s, stream=True) as r:
            assert r.status == 200
            first = await r.content.readuntil(b"\n\n")
            assert first.startswith(b"data: ")
            os.kill(p.p.pid, signal.SIGKILL)
            rest = await asyncio.wait_for(r.content.read(), 30)
        assert rest.count(b'data: {"error"') == 1, rest[-400:]
        assert b"[DONE]" not in rest


async def test_stopped_polls_fail_over_to_a_direct_worker(tmp_path, eldric_proc):
    """SIGSTOP: the worker's connections stay open but it polls no more. The edge drops
    the tunnel after twice its poll time and answers its queued requests 503 before any
    byte: the router fails them over to the direct worker."""
    async with cluster(tmp_path, edge_flags={"tunnel_poll_ms": 1000},
                       router_flags={"strategy": "round_robin",
                                     "health_interval": 60_000}) as cl, \
            aiohttp.ClientSession() as s:
        p = eldric_proc(*worker_argv(cl, data_dir=tmp_path / "w"))
        (tunnelled,) = await until(lambda: cl.workers(s), timeout=15)
        async with run_eldric("worker", tmp_path / "d", backend="mock", port=0,
                              bind="127.0.0.1", controller=cl.controller,
                              heartbeat_interval=200):
            await until(lambda: _two(s, cl), timeout=15)
            await routed(s, cl, tunnelled["url"])
            os.kill(p.p.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()

                async def one() -> tuple[int, str, str]:
                    async with cl.chat(s, max_tokens=2) as r:
                        await r.read()
                        return (r.status, r.headers.get("X-Eldric-Worker", ""),
                                r.headers.get("X-Eldric-Route-Reason", ""))
                got = await asyncio.gather(*[one() for _ in range(4)])
                took = time.monotonic() - started
            finally:
                os.kill(p.p.pid, signal.SIGCONT)
    assert [status for status, _, _ in got] == [200] * 4, got
    assert all(wid != tunnelled["id"] for _, wid, _ in got), got
    assert any("attempt 2" in reason for _, _, reason in got), got
    assert took < 20, took


async def _two(s: aiohttp.ClientSession, cl) -> bool:  # type: ignore[no-untyped-def]
    return len(await cl.workers(s)) == 2


async def test_the_worker_reconnects_when_the_edge_restarts(tmp_path):
    """The same worker process through an edge restart: it comes back on its own, with
    the same id, and serves again."""
    from tests.roles.tunnel.kit import edge

    port = free_port()
    async with aiohttp.ClientSession() as s, \
            run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c:
        edge_url = f"http://127.0.0.1:{port}"
        flags = {"backend": "mock", "port": 0, "bind": "127.0.0.1", "tunnel": edge_url,
                 "api_key": "sk-worker", "controller": c["controller"],
                 "heartbeat_interval": 200}
        async with run_eldric("worker", tmp_path / "w", **flags):
            async with edge(tmp_path, http_port=port) as e:
                (t,) = await until(lambda: _tunnels(s, e), timeout=10)
            async with edge(tmp_path, http_port=port) as e:
                (t2,) = await until(lambda: _tunnels(s, e), timeout=15)
                assert t2["tunnel"] == t["tunnel"]
                async with s.get(f"{e}/api/v1/tunnel/{t2['tunnel']}/forward/health",
                                 headers={"Authorization": "Bearer sk-router"}) as r:
                    assert r.status == 200


async def _tunnels(s: aiohttp.ClientSession, e: str) -> list[dict]:
    async with s.get(e + "/api/v1/tunnel/workers",
                     headers={"Authorization": "Bearer sk-admin"}) as r:
        return (await r.json())["tunnels"]


async def test_a_key_without_the_register_scope_is_told_at_start(tmp_path, eldric_proc):
    async with cluster(tmp_path) as cl, aiohttp.ClientSession() as s:
        p = eldric_proc(*worker_argv(cl, api_key=PLAIN, data_dir=tmp_path / "w"))
        await until(lambda: "tunnel_refused_key" in p.output(), timeout=15)
        out = p.stop()
        assert not await cl.tunnels(s)
    line = next(x for x in out.splitlines() if "tunnel_refused_key" in x)
    assert "403" in line and "scope register" in line


async def test_200_concurrent_streams_through_one_tunnel(tmp_path):
    async with cluster(tmp_path, edge_flags={"tunnel_max_queued": 256}) as cl, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s, \
            run_eldric("worker", tmp_path / "w",
                       **worker_flags(cl, mock_tokens=8, tunnel_concurrency=64)):
        (rec,) = await until(lambda: cl.workers(s), timeout=15)
        await routed(s, cl, rec["url"])

        async def one() -> bytes:
            async with cl.chat(s, stream=True) as r:
                assert r.status == 200, await r.text()
                return await r.read()
        started = time.monotonic()
        replies = await asyncio.wait_for(asyncio.gather(*[one() for _ in range(200)]), 120)
        took = time.monotonic() - started
    assert all(b.endswith(b"data: [DONE]\n\n") and b.count(b"data: ") == 11 for b in replies)
    assert took < 90, took


async def test_a_client_leaving_mid_stream_stops_the_worker(tmp_path):
    """The whole chain: a client that leaves a stream at the edge makes the router leave
    the tunnel's forward, the edge answers the worker's upload 409, and the worker closes
    its local request: its backend stops generating (active_requests back to 0) long
    before the reply would have ended."""
    async with cluster(tmp_path) as cl, aiohttp.ClientSession() as s, \
            run_eldric("worker", tmp_path / "w", **worker_flags(
                cl, mock_tokens=400, mock_token_delay=50)) as w:
        (rec,) = await until(lambda: cl.workers(s))
        await routed(s, cl, rec["url"])

        async def active() -> int:
            async with s.get(w["worker"] + "/health") as r:
                return (await r.json())["load"]["active_requests"]

        caller = aiohttp.ClientSession()
        r = await cl.chat(caller, stream=True)
        assert r.status == 200
        await r.content.readuntil(b"\n\n")
        await r.content.readuntil(b"\n\n")
        assert await active() == 1
        t0 = time.monotonic()
        await caller.close()  # the client leaves (400 tokens x 50 ms = 20 s to go)
        await until(lambda: _is(active, 0), timeout=8)
        assert time.monotonic() - t0 < 8


async def _is(f, value) -> bool:  # type: ignore[no-untyped-def]
    return await f() == value


async def test_the_routers_health_checks_mark_a_tunnel_down_with_its_edge_and_back(tmp_path):
    """The router checks a tunnel:// worker through the edge: with the edge gone the
    worker is marked down (no chat is sent to it), and once the edge is back and the
    worker reconnected (same id), it is healthy again and serves."""
    from tests.roles.tunnel.kit import ROUTER, WORKER, edge

    port = free_port()
    async with aiohttp.ClientSession() as s, \
            run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       controller=c["controller"], api_key=ROUTER, sync_interval=200,
                       health_interval=300) as r:
        router = r["router"]

        async def state() -> str | None:
            async with s.get(router + "/api/v1/workers") as resp:
                ws = (await resp.json())["workers"]
            return ("healthy" if ws[0]["healthy"] else "down") if ws else None

        async def chat() -> int:
            async with s.post(router + "/v1/chat/completions", json={**CHAT, "max_tokens": 1}) as resp:
                await resp.read()
                return resp.status

        flags = {"backend": "mock", "port": 0, "bind": "127.0.0.1",
                 "tunnel": f"http://127.0.0.1:{port}", "api_key": WORKER,
                 "controller": c["controller"], "heartbeat_interval": 200}
        async with run_eldric("worker", tmp_path / "w", **flags):
            async with edge(tmp_path, http_port=port):
                await until(lambda: _is(state, "healthy"), timeout=15)
                assert await chat() == 200
            await until(lambda: _is(state, "down"), timeout=10)
            assert await chat() == 503
            async with edge(tmp_path, http_port=port):
                await until(lambda: _is(state, "healthy"), timeout=20)
                assert await chat() == 200
