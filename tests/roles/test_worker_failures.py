"""Failure paths of the worker: backend down, dying mid-stream, client leaving, timeouts."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import openai
import pytest
from aiohttp import web

from tests.conftest import free_port, run_eldric, url_of
from tests.fakes.openai_server import KNOBS, MODELS

CHAT = {"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}


async def _bare_backend(aiohttp_server, chat) -> str:  # type: ignore[no-untyped-def]
    """A backend whose chat is `chat` and whose model list is empty; its URL."""
    async def models(request):  # type: ignore[no-untyped-def]
        return web.json_response({"object": "list", "data": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return url_of(await aiohttp_server(app))


async def test_backend_down_gives_503_and_health_says_so(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=dead) as urls:
        async with aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
                assert r.status == 503
                err = (await r.json())["error"]
            assert time.monotonic() - t0 < 2  # nothing hangs
            assert "vllm" in err["message"] and dead in err["message"]
            assert err["code"] == "upstream_unavailable"
            async with s.get(urls["worker"] + "/health") as r:
                assert r.status == 503
                health = await r.json()
            assert health["status"] == "unhealthy"
            assert health["backend"] == {"type": "vllm", "url": dead, "healthy": False}
            async with s.get(urls["worker"] + "/v1/models") as r:
                assert r.status == 503


async def test_backend_recovers_when_it_comes_back(aiohttp_server, tmp_path):
    from tests.fakes import openai_server

    port = free_port()
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=f"http://127.0.0.1:{port}", health_interval=100) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["worker"] + "/health") as r:
                assert r.status == 503
            server = await aiohttp_server(openai_server.make_app(), port=port)
            for _ in range(50):
                async with s.get(urls["worker"] + "/health") as r:
                    health = await r.json()
                    if r.status == 200:
                        break
                await asyncio.sleep(0.05)
            assert health["status"] == "healthy" and health["models"] == MODELS
            async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
                assert r.status == 200
        await server.close()


async def test_backend_dying_mid_stream_ends_with_one_sse_error(fake_openai_server, tmp_path):
    fake_openai_server.app[KNOBS].die_after = 2
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["worker"] + "/v1/chat/completions",
                              json={**CHAT, "stream": True}) as r:
                assert r.status == 200
                raw = await r.read()  # ends cleanly: no exception, no hang
    events = [e for e in raw.decode().split("\n\n") if e]
    assert len(events) == 4  # role chunk, two tokens, the error
    assert all(e.startswith("data: ") for e in events)
    last = json.loads(events[-1][len("data: "):])
    assert "error" in last and "mid-reply" in last["error"]["message"]
    assert sum("error" in json.loads(e[6:]) for e in events) == 1


async def test_sdk_sees_the_mid_stream_error(fake_openai_server, tmp_path):
    fake_openai_server.app[KNOBS].die_after = 1
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        client = openai.AsyncOpenAI(base_url=urls["worker"] + "/v1", api_key="x")
        stream = await client.chat.completions.create(**CHAT, stream=True)
        with pytest.raises(openai.APIError) as info:
            async for _ in stream:
                pass
        assert "mid-reply" in str(info.value)
        await client.close()


async def test_client_disconnect_cancels_backend_request(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[KNOBS]
    knobs.tokens, knobs.delay = 200, 0.05
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        s = aiohttp.ClientSession()
        r = await s.post(urls["worker"] + "/v1/chat/completions", json={**CHAT, "stream": True})
        await r.content.readuntil(b"w1")  # a couple of tokens arrived
        left = time.monotonic()
        r.close()  # the client goes away mid-stream
        await s.close()
        await asyncio.wait_for(knobs.disconnected.wait(), 1.0)  # backend saw it within 1 s
        assert knobs.cancelled_at - left < 1.0
        async with aiohttp.ClientSession() as s2:
            for _ in range(20):
                async with s2.get(urls["worker"] + "/metrics") as m:
                    text = await m.text()
                if 'eldric_client_disconnects_total{role="worker"} 1.0' in text:
                    break
                await asyncio.sleep(0.05)
        assert 'eldric_client_disconnects_total{role="worker"} 1.0' in text
        assert 'outcome="cancelled"' in text


async def test_first_byte_timeout_gives_504(aiohttp_server, tmp_path):
    async def slow(request):
        await asyncio.sleep(5)
        return web.json_response({})

    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=await _bare_backend(aiohttp_server, slow),
                          first_byte_timeout=300) as urls:
        async with aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
                assert r.status == 504
                err = (await r.json())["error"]
            assert time.monotonic() - t0 < 2
            assert "first-byte timeout" in err["message"]


async def test_idle_timeout_ends_a_stalled_stream(aiohttp_server, tmp_path):
    async def stall(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices":[]}\n\n')
        await asyncio.sleep(10)  # then nothing
        return resp

    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=await _bare_backend(aiohttp_server, stall),
                          idle_timeout=300) as urls:
        async with aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            async with s.post(urls["worker"] + "/v1/chat/completions",
                              json={**CHAT, "stream": True}) as r:
                raw = await r.read()
            assert time.monotonic() - t0 < 2
    first, last = [e for e in raw.decode().split("\n\n") if e]
    assert first == 'data: {"choices":[]}'
    assert "idle timeout" in json.loads(last[6:])["error"]["message"]


async def test_slow_body_is_cut_off_with_408(fake_openai_server, tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server), body_timeout=300) as urls:
        host, port = urls["worker"].removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mod")
        await writer.drain()
        t0 = time.monotonic()
        head = await asyncio.wait_for(reader.read(4096), 3)
        assert time.monotonic() - t0 < 2
        assert head.startswith(b"HTTP/1.1 408")
        assert b"body_timeout" in head
        writer.close()


def test_a_backend_unreachable_at_start_is_a_warning_saying_what_to_check(eldric_proc,
                                                                          tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    proc = eldric_proc("--role", "worker", "--backend", "vllm", "--backend-url", dead,
                       "--bind", "127.0.0.1", "--port", str(free_port()),
                       "--data-dir", str(tmp_path), "--log-format", "json")
    deadline = time.monotonic() + 15
    while '"backend_unreachable"' not in proc.output():
        assert proc.p.poll() is None and time.monotonic() < deadline, proc.output()
        time.sleep(0.05)
    out = proc.stop()
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    (line,) = [x for x in lines if x["event"] == "backend_unreachable"]
    assert line["level"] == "warning"
    assert line["backend_url"] == dead and line["error"]
    assert dead in line["check"] and "--backend-url" in line["check"]
