"""The worker's end of the NAT tunnel against a stand-in edge (tests/fakes/tunnel_edge):
it connects with its key, long-polls, serves through its own listener, streams replies
back chunk by chunk, stops a request whose caller left, comes back with its id, and
registers its tunnel:// URL; the router reaches a tunnel:// worker at the edge's forward
endpoint with its own key."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

import aiohttp

from tests.conftest import run_eldric, until, url_of
from tests.fakes import tunnel_edge
from tests.fakes.controller import STATE as CTRL
from tests.fakes.tunnel_edge import REGISTER_KEY, STATE

CHAT = {"model": "eldric-mock", "messages": [{"role": "user", "content": "hi"}]}


async def edge(aiohttp_server, poll_s: float = 2.0):
    server = await aiohttp_server(tunnel_edge.make_app(poll_s))
    server.app[STATE].url = url_of(server)
    return server, server.app[STATE]


def worker(tmp_path, edge_url: str, **flags):
    flags = {"backend": "mock", "port": 0, "bind": "127.0.0.1", "tunnel": edge_url,
             "api_key": REGISTER_KEY, "tunnel_concurrency": 4, **flags}
    return run_eldric("worker", tmp_path, **flags)


def forward_url(st, path: str) -> str:
    (tid,) = st.queues
    return f"{st.url}/api/v1/tunnel/{tid}/forward{path}"


async def test_serves_through_the_tunnel_streamed_and_not(aiohttp_server, tmp_path):
    server, st = await edge(aiohttp_server)
    async with worker(tmp_path, st.url, mock_tokens=5) as urls, aiohttp.ClientSession() as s:
        await until(lambda: len(st.queues) == 1)
        (tid,) = st.queues
        assert st.connects[0]["concurrency"] == 4
        async with s.post(forward_url(st, "/v1/chat/completions"), json=CHAT) as r:
            assert r.status == 200
            tunnelled = await r.json()
        async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
            direct = await r.json()
        assert tunnelled["choices"] == direct["choices"]
        body = {**CHAT, "stream": True, "seed": 7}
        async with s.post(forward_url(st, "/v1/chat/completions"), json=body) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            sse = await r.read()
        async with s.post(urls["worker"] + "/v1/chat/completions", json=body) as r:
            direct_sse = await r.read()
        # The same events (each carries its own id and time: compare what they say).
        def said(raw: bytes) -> list:
            out = []
            for line in raw.split(b"\n"):
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    e = json.loads(line[6:])
                    out.append([c.get("delta") for c in e.get("choices", [])])
            return out
        assert said(sse) == said(direct_sse) and sse.endswith(b"data: [DONE]\n\n")
        async with s.get(forward_url(st, "/health")) as r:
            assert r.status == 200 and (await r.json())["worker_type"] == "inference"
    assert st.uploads and all(code == 200 for _, code in st.uploads)
    assert st.disconnects == [tid]  # told the edge on the way out


async def test_chunks_arrive_as_the_backend_makes_them(aiohttp_server, tmp_path):
    server, st = await edge(aiohttp_server)
    async with worker(tmp_path, st.url, mock_tokens=6, mock_token_delay=300), \
            aiohttp.ClientSession() as s:
        await until(lambda: len(st.queues) == 1)
        started = time.monotonic()
        async with s.post(forward_url(st, "/v1/chat/completions"),
                          json={**CHAT, "stream": True}) as r:
            first = await r.content.readline()
            at_first = time.monotonic() - started
            rest = await r.read()
            total = time.monotonic() - started
        assert first.startswith(b"data: ")
        # six tokens 300 ms apart: the first arrives long before the last was made
        assert at_first < total - 0.8, (at_first, total)
        assert rest.endswith(b"data: [DONE]\n\n")


async def test_a_caller_that_left_stops_the_local_request(aiohttp_server, tmp_path):
    """The edge answers the upload 409: the worker closes its local request at once (its
    own listener sees the client leave), not after the backend finished."""
    server, st = await edge(aiohttp_server)
    st.refuse_uploads = True
    async with worker(tmp_path, st.url, mock_tokens=100, mock_token_delay=50) as urls, \
            aiohttp.ClientSession() as s:
        await until(lambda: len(st.queues) == 1)
        (q,) = st.queues.values()
        await q.put({"id": "r1", "method": "POST", "path": "/v1/chat/completions",
                     "headers": [["Content-Type", "application/json"]],
                     "body": base64.b64encode(
                         json.dumps({**CHAT, "stream": True}).encode()).decode()})
        await until(lambda: st.uploads, timeout=5)
        assert st.uploads == [("r1", 409)]

        async def idle():
            async with s.get(urls["worker"] + "/health") as r:
                return (await r.json())["load"]["active_requests"] == 0
        # 200 tokens x 50 ms = 10 s if it ran on
        await until(idle, timeout=3)


async def test_a_broken_upload_stops_the_local_request(aiohttp_server, tmp_path):
    server, st = await edge(aiohttp_server)
    st.cut_uploads_after = 2
    async with worker(tmp_path, st.url, mock_tokens=100, mock_token_delay=50) as urls, \
            aiohttp.ClientSession() as s:
        await until(lambda: len(st.queues) == 1)
        async with s.post(forward_url(st, "/v1/chat/completions"),
                          json={**CHAT, "stream": True}) as r:
            with contextlib.suppress(aiohttp.ClientError):
                await r.read()
        assert [code for _, code in st.uploads] == [-1]

        async def idle():
            async with s.get(urls["worker"] + "/health") as r:
                return (await r.json())["load"]["active_requests"] == 0
        await until(idle, timeout=3)  # not the 10 s the backend would take
        # and the tunnel still serves
        st.cut_uploads_after = None
        async with s.post(forward_url(st, "/v1/chat/completions"),
                          json={**CHAT, "max_tokens": 2}) as r:
            assert r.status == 200


async def test_a_stopping_worker_finishes_its_stream_then_disconnects(aiohttp_server,
                                                                       tmp_path):
    server, st = await edge(aiohttp_server)
    async with aiohttp.ClientSession() as s:
        async with worker(tmp_path, st.url, mock_tokens=10, mock_token_delay=100):
            await until(lambda: len(st.queues) == 1)
            (tid,) = st.queues
            resp = await s.post(forward_url(st, "/v1/chat/completions"),
                                json={**CHAT, "stream": True})
            assert (await resp.content.readline()).startswith(b"data: ")
            reading = asyncio.ensure_future(resp.read())
        # the worker has stopped: the stream it had begun came through whole
        assert (await asyncio.wait_for(reading, 10)).endswith(b"data: [DONE]\n\n")
        resp.release()
    assert st.disconnects == [tid] and [code for _, code in st.uploads] == [200]


async def test_edge_restart_reconnects_with_the_same_id(aiohttp_server, tmp_path):
    server, st = await edge(aiohttp_server, poll_s=0.3)
    async with worker(tmp_path, st.url), aiohttp.ClientSession() as s:
        await until(lambda: len(st.queues) == 1)
        (tid,) = st.queues
        st.forget()  # the edge restarted: polls answer 404 tunnel_not_found
        await until(lambda: len(st.connects) >= 2, timeout=10)
        assert st.connects[1]["tunnel_id"] == tid
        await until(lambda: tid in st.queues)
        async with s.post(forward_url(st, "/v1/chat/completions"), json=CHAT) as r:
            assert r.status == 200
    # and a restarted worker keeps it too (kept in --data-dir)
    async with worker(tmp_path, st.url):
        await until(lambda: len(st.connects) >= 3)
    assert st.connects[2]["tunnel_id"] == tid


async def test_an_id_another_client_holds_is_given_up(aiohttp_server, tmp_path):
    server, st = await edge(aiohttp_server, poll_s=0.3)
    async with worker(tmp_path, st.url), aiohttp.ClientSession() as s:
        await until(lambda: len(st.queues) == 1)
        (old,) = st.queues
        st.forget()
        st.taken.add(old)  # the restarted edge gave the id to another client
        await until(lambda: len(st.queues) == 1, timeout=10)
        (new,) = st.queues
        assert new != old and [c.get("tunnel_id") for c in st.connects[1:]] == [old, None]
        async with s.post(forward_url(st, "/v1/chat/completions"), json=CHAT) as r:
            assert r.status == 200
    assert (tmp_path / "data" / "tunnel-0.id").read_text().strip() == new


async def test_a_stopping_edge_is_polled_again_not_reconnected(aiohttp_server, tmp_path):
    server, st = await edge(aiohttp_server, poll_s=0.3)
    st.stopping = True
    async with worker(tmp_path, st.url, tunnel_concurrency=1), aiohttp.ClientSession() as s:
        await until(lambda: st.stopped_polls >= 3, timeout=10)
        assert len(st.connects) == 1  # the tunnel is still known: no connect again
        st.stopping = False
        async with s.post(forward_url(st, "/v1/chat/completions"), json=CHAT) as r:
            assert r.status == 200


async def test_a_key_without_the_register_scope_is_refused_and_said(aiohttp_server,
                                                                    tmp_path, eldric_proc):
    server, st = await edge(aiohttp_server)
    p = eldric_proc("--role", "worker", "--backend", "mock", "--port", "0", "--bind",
                    "127.0.0.1", "--tunnel", st.url, "--api-key", "inference-only")
    await until(lambda: st.refused_connects >= 1, timeout=15)
    await until(lambda: "tunnel_refused_key" in p.output(), timeout=5)
    out = p.stop()
    assert "scope register" in out and "403" in out
    assert not st.connects


async def test_registers_its_tunnel_url(aiohttp_server, fake_controller_server, tmp_path):
    server, st = await edge(aiohttp_server)
    ctl = fake_controller_server.app[CTRL]
    async with worker(tmp_path, st.url, controller=url_of(fake_controller_server),
                      heartbeat_interval=100):
        await until(lambda: ctl.registrations)
        (tid,) = st.queues
    url = ctl.registrations[0]["url"]
    assert url == f"tunnel+http://{server.host}:{server.port}/{tid}"


async def test_router_reaches_a_tunnel_worker_through_the_edge(aiohttp_server, tmp_path):
    server, st = await edge(aiohttp_server)
    async with worker(tmp_path / "w", st.url), aiohttp.ClientSession() as s:
        await until(lambda: len(st.queues) == 1)
        (tid,) = st.queues
        url = f"tunnel+http://{server.host}:{server.port}/{tid}"
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=url, api_key="cluster-key", health_interval=200) as r:
            async with s.post(r["router"] + "/v1/chat/completions",
                              json={**CHAT, "stream": True}) as resp:
                assert resp.status == 200
                assert resp.headers["X-Eldric-Worker"] == url
                assert (await resp.read()).endswith(b"data: [DONE]\n\n")
    # every call, health checks included, came with the router's key
    assert st.seen and set(st.seen) == {"Bearer cluster-key"}


async def test_a_tunnel_url_naming_no_tunnel_is_refused_at_start(tmp_path):
    import pytest

    from eldric.errors import ConfigError

    with pytest.raises(ConfigError, match="router.workers"):
        async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1",
                              workers="tunnel://edge.example.com/"):
            pass
