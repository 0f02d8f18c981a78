"""Faults, each bounded in time, on loopback, with eldric processes started as a user would:
a worker SIGKILLed under load, the controller stopped and restarted, a router lost behind
the edge."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import aiohttp

from tests.conftest import free_port

CHAT = {"model": "eldric-mock", "messages": [{"role": "user", "content": "hi"}]}


def _worker(eldric_proc, tmp_path, name, *extra):
    port = free_port()
    proc = eldric_proc("--role", "worker", "--backend", "mock", "--bind", "127.0.0.1",
                       "--port", str(port), "--data-dir", str(tmp_path / name), *extra)
    return proc, f"http://127.0.0.1:{port}"


async def _load(url: str, clients: int, seconds: float, headers=None) -> list[int]:
    """`clients` loops sending non-streaming chats for `seconds`; every status seen."""
    statuses: list[int] = []
    stop_at = time.monotonic() + seconds

    async def one(s: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop_at:
            async with s.post(url + "/v1/chat/completions", json=CHAT, headers=headers) as r:
                await r.read()
                statuses.append(r.status)

    async with aiohttp.ClientSession() as s:
        await asyncio.gather(*(one(s) for _ in range(clients)))
    return statuses


async def test_worker_sigkilled_under_load(eldric_proc, tmp_path):
    # 40 tokens, 15 ms apart: a reply takes ~0.6 s, so replies are in flight on a when it dies.
    slow = ("--mock-tokens", "40", "--mock-token-delay", "15")
    wa, ua = _worker(eldric_proc, tmp_path, "a", *slow)
    wb, ub = _worker(eldric_proc, tmp_path, "b", *slow)
    wa.wait_http(ua + "/health")
    wb.wait_http(ub + "/health")
    rport = free_port()
    router = eldric_proc("--role", "router", "--bind", "127.0.0.1", "--port", str(rport),
                         "--workers", f"{ua},{ub}", "--strategy", "round_robin",
                         "--health-interval", "200", "--data-dir", str(tmp_path / "r"))
    for p, u in ((wa, ua), (wb, ub), (router, f"http://127.0.0.1:{rport}")):
        p.wait_http(u + "/health")
    base = f"http://127.0.0.1:{rport}"
    async with aiohttp.ClientSession() as s:
        # A stream on worker a, cut when a dies: one SSE error event, a clean end.
        streams = []
        for _ in range(2):
            r = await s.post(base + "/v1/chat/completions", json={**CHAT, "stream": True})
            streams.append(r)
        on_a = next(r for r in streams if r.headers["X-Eldric-Worker"] == ua)
        await on_a.content.readuntil(b"\n\n")
        load = asyncio.create_task(_load(base, clients=4, seconds=3.0))
        await asyncio.sleep(0.3)
        wa.p.send_signal(signal.SIGKILL)  # under load, mid-stream
        rest = await asyncio.wait_for(on_a.read(), 10)
        statuses = await load
        for r in streams:
            r.close()
    events = [e for e in rest.decode().split("\n\n") if e.strip()]
    errors = [e for e in events if '"error"' in e]
    assert len(errors) == 1 and events[-1] == errors[0]  # one error event, at the end
    assert "mid-reply" in json.loads(errors[0][len("data: "):])["error"]["message"]
    assert len(statuses) >= 12 and statuses.count(200) == len(statuses)  # 0 failed


async def test_controller_stopped_then_restarted(eldric_proc, tmp_path):
    cport = free_port()
    cargs = ("--role", "controller", "--bind", "127.0.0.1", "--port", str(cport),
             "--data-dir", str(tmp_path / "c"))
    ctl = eldric_proc(*cargs)
    cbase = f"http://127.0.0.1:{cport}"
    ctl.wait_http(cbase + "/health")
    w, uw = _worker(eldric_proc, tmp_path, "w", "--controller", cbase,
                    "--heartbeat-interval", "200")
    rport = free_port()
    router = eldric_proc("--role", "router", "--bind", "127.0.0.1", "--port", str(rport),
                         "--controller", cbase, "--sync-interval", "200",
                         "--data-dir", str(tmp_path / "r"))
    base = f"http://127.0.0.1:{rport}"
    w.wait_http(uw + "/health")
    router.wait_http(base + "/health")
    async with aiohttp.ClientSession() as s:
        async def served() -> bool:
            async with s.post(base + "/v1/chat/completions", json=CHAT) as r:
                return r.status == 200

        deadline = time.monotonic() + 10
        while not await served():  # the router learned the worker from the controller
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        async with s.get(cbase + "/api/v1/workers?type=inference") as r:  # not the router
            (before,) = (await r.json())["workers"]
        ctl.p.send_signal(signal.SIGTERM)
        assert ctl.p.wait(10) == 0
        await asyncio.sleep(0.6)  # several failed syncs
        assert all([await served() for _ in range(5)])  # routing on the last known list
        ctl2 = eldric_proc(*cargs)
        ctl2.wait_http(cbase + "/health")
        deadline = time.monotonic() + 10
        while True:
            async with s.get(cbase + "/api/v1/workers?type=inference") as r:  # not the router
                after = (await r.json())["workers"]
            if after and after[0]["last_heartbeat"] > before["last_heartbeat"]:
                break
            assert time.monotonic() < deadline, "the worker did not come back"
            await asyncio.sleep(0.1)
        assert after[0]["id"] == before["id"] and after[0]["url"] == uw  # nothing lost
        assert await served()


async def test_one_of_two_routers_killed_behind_the_edge(eldric_proc, tmp_path):
    w, uw = _worker(eldric_proc, tmp_path, "w")
    w.wait_http(uw + "/health")
    routers = []
    for name in ("r1", "r2"):
        port = free_port()
        proc = eldric_proc("--role", "router", "--bind", "127.0.0.1", "--port", str(port),
                           "--workers", uw, "--health-interval", "200",
                           "--data-dir", str(tmp_path / name))
        routers.append((proc, f"http://127.0.0.1:{port}"))
    eport = free_port()
    edge = eldric_proc("--role", "edge", "--no-tls", "--http-port", str(eport), "--bind",
                       "127.0.0.1", "--routers", ",".join(u for _, u in routers),
                       "--api-key", "k", "--health-interval", "200",
                       "--per-ip-rpm", "1000000", "--per-key-rpm", "1000000",
                       "--global-rpm", "1000000", "--data-dir", str(tmp_path / "e"))
    for proc, u in routers:
        proc.wait_http(u + "/health")
    edge.wait_http(f"http://127.0.0.1:{eport}/health")
    load = asyncio.create_task(_load(f"http://127.0.0.1:{eport}", clients=4, seconds=2.0,
                                     headers={"Authorization": "Bearer k"}))
    await asyncio.sleep(0.5)
    routers[0][0].p.send_signal(signal.SIGKILL)
    statuses = await load
    assert len(statuses) > 20 and statuses.count(200) == len(statuses)  # 0 failed
