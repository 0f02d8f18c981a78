"""A real worker in front of fake vLLM and Ollama servers, driven by the openai SDK and aiohttp."""

from __future__ import annotations

import re

import aiohttp
import openai
import pytest

from tests.conftest import run_eldric, url_of
from tests.fakes.openai_server import KNOBS, MODELS

CHAT = {"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}


async def test_chat_non_streaming_with_openai_sdk(fake_openai_server, tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        client = openai.AsyncOpenAI(base_url=urls["worker"] + "/v1", api_key="unused")
        reply = await client.chat.completions.create(**CHAT)
        assert reply.choices[0].message.content == " w0 w1 w2 w3 w4"
        assert reply.usage.total_tokens == 8
        await client.close()


async def test_streaming_is_byte_identical_to_backend(fake_openai_server, tmp_path):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as s:
        async with s.post(str(fake_openai_server.make_url("/v1/chat/completions")),
                          json=body) as r:
            direct = await r.read()
        async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                              backend_url=url_of(fake_openai_server)) as urls:
            async with s.post(urls["worker"] + "/v1/chat/completions", json=body) as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "text/event-stream"
                relayed = await r.read()
    # The fake stamps `created` with the current second (which may tick between the two
    # requests); compare with that masked only.
    mask = lambda b: re.sub(rb'"created": \d+', b'"created": T', b)  # noqa: E731
    assert mask(relayed) == mask(direct)
    assert relayed.endswith(b"data: [DONE]\n\n")


async def test_streaming_with_openai_sdk(fake_openai_server, tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        client = openai.AsyncOpenAI(base_url=urls["worker"] + "/v1", api_key="unused")
        stream = await client.chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True})
        parts, usage = [], None
        async for chunk in stream:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
            if chunk.usage:
                usage = chunk.usage
        assert "".join(parts) == " w0 w1 w2 w3 w4"
        assert usage is not None and usage.completion_tokens == 5
        await client.close()


async def test_completions_embeddings_and_unknown_v1_paths(fake_openai_server, tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        client = openai.AsyncOpenAI(base_url=urls["worker"] + "/v1", api_key="unused")
        comp = await client.completions.create(model=MODELS[0], prompt="one, two")
        assert comp.choices[0].text == " and so on"
        emb = await client.embeddings.create(model=MODELS[1], input=["a", "b"])
        assert [d.index for d in emb.data] == [0, 1]
        assert emb.data[0].embedding == [0.1, 0.2, 0.3]
        # /v1/rerank is unknown to eldric: forwarded as-is, query string included.
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["worker"] + "/v1/rerank?top_n=2",
                              json={"model": MODELS[1], "query": "q",
                                    "documents": ["x", "y"]}) as r:
                assert r.status == 200
                assert len((await r.json())["results"]) == 2
        assert fake_openai_server.app[KNOBS].requests[-1]["query"] == "top_n=2"
        await client.close()


async def test_models_mapped_from_openai_and_ollama(fake_openai_server, fake_ollama_server,
                                                    tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server) + "/v1") as urls:
        client = openai.AsyncOpenAI(base_url=urls["worker"] + "/v1", api_key="unused")
        ids = [m.id async for m in client.models.list()]
        assert ids == MODELS
        await client.close()
    async with run_eldric("worker", tmp_path, backend="ollama", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_ollama_server)) as urls:
        client = openai.AsyncOpenAI(base_url=urls["worker"] + "/v1", api_key="unused")
        models = [m async for m in client.models.list()]
        assert [m.id for m in models] == ["llama3.2:3b", "nomic-embed-text:latest"]
        assert all(m.object == "model" and m.owned_by == "ollama" for m in models)
        reply = await client.chat.completions.create(
            model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello there!"
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "hi"}])
        assert "not found" in info.value.message
        await client.close()


async def test_request_id_round_trip_and_headers(fake_openai_server, tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server),
                          backend_api_key="sk-backend-secret") as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT,
                              headers={"X-Request-ID": "req-abc.123",
                                       "Authorization": "Bearer client-key",
                                       "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                       "tracestate": "congo=t61rcWkgMzE"}) as r:
                assert r.status == 200
                assert r.headers["X-Request-ID"] == "req-abc.123"
            async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
                generated = r.headers["X-Request-ID"]
                assert len(generated) == 24 and generated.isalnum()
    sent = [q["headers"] for q in fake_openai_server.app[KNOBS].requests]
    assert sent[0]["X-Request-ID"] == "req-abc.123"
    assert sent[0]["traceparent"].startswith("00-0af7651916cd43dd")
    assert sent[0]["tracestate"] == "congo=t61rcWkgMzE"
    # The client's key is not passed on; the backend's own key is.
    assert sent[0]["Authorization"] == "Bearer sk-backend-secret"
    assert sent[1]["X-Request-ID"] == generated


# eldric's contract is the status, the error shape, the parameter and eldric's own code;
# the message text comes partly from msgspec and changes with its versions.
@pytest.mark.parametrize("body,param,code", [
    (b'{"model": "x", "messages": [', None, "invalid_json"),
    (b"", None, "invalid_body"),
    (b'[1, 2]', None, "invalid_request"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}', "model", "invalid_request"),
    (b'{"model": 7, "messages": []}', "model", "invalid_request"),
    (b'{"model": "m", "messages": "hi"}', "messages", "invalid_request"),
    (b'{"model": "m", "stream": "yes", "messages": []}', "stream", "invalid_request"),
    (b'{"model": "\xed\xa0\x80", "messages": []}', None, "invalid_json"),  # was a 500
    (b'{"model": "\\ud800", "messages": []}', None, "invalid_json"),  # escaped lone surrogate
    (b'{"a": ' * 50_000, None, "too_deep"),  # was a 500 (a recursion error)
    (b'{"model": "m", "messages": [' + b'[' * 100_000, None, "too_deep"),
])
async def test_bad_bodies_get_400(fake_openai_server, tmp_path, body, param, code):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["worker"] + "/v1/chat/completions", data=body,
                              headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400
                err = (await r.json())["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert err["code"] == code
    assert err["message"]
    assert fake_openai_server.app[KNOBS].requests == []  # nothing reached the backend


async def test_oversized_body_gets_413(fake_openai_server, tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server), max_body_size=4096) as urls:
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 10_000}]}
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["worker"] + "/v1/chat/completions", json=big) as r:
                assert r.status == 413
                err = (await r.json())["error"]
                assert err["code"] == "request_too_large"
            async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
                assert r.status == 200  # a normal request still passes


async def test_backend_4xx_and_5xx_errors_normalised(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[KNOBS]
    async with run_eldric("worker", tmp_path, backend="tgi", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        async with aiohttp.ClientSession() as s:
            # TGI's own error shape -> OpenAI's, status kept.
            knobs.fail_status = 422
            knobs.fail_body = b'{"error":"Input validation error: `inputs` must have less than 4096 tokens","error_type":"validation"}'
            async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
                assert r.status == 422
                err = (await r.json())["error"]
                assert err["message"].startswith("Input validation error")
                assert err["code"] == "validation"
                assert err["type"] == "invalid_request_error"
            # A plain-text 500 from the backend keeps its status, in OpenAI shape.
            knobs.fail_status = 500
            knobs.fail_body = b"CUDA out of memory"
            async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
                assert r.status == 500
                err = (await r.json())["error"]
                assert err["message"] == "CUDA out of memory"
                assert err["type"] == "api_error"
            # A 4xx/5xx status reply does not mark the backend down (it answered).
            async with s.get(urls["worker"] + "/health") as r:
                assert r.status == 200


async def test_health_advertises_the_paths_its_backend_serves(fake_openai_server, tmp_path):
    async with run_eldric("worker", tmp_path / "a", backend="tgi", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as a, \
            run_eldric("worker", tmp_path / "b", backend="vllm", port=0, bind="127.0.0.1",
                       backend_url=url_of(fake_openai_server),
                       paths="/v1/chat/completions,/v1/rerank") as b, \
            run_eldric("worker", tmp_path / "c", backend="openai", port=0, bind="127.0.0.1",
                       backend_url=url_of(fake_openai_server)) as c:
        async with aiohttp.ClientSession() as s:
            # the native paths, then those translated to them (eldric.wire.translated;
            # no embeddings natively, so none of Ollama's embed APIs) and Ollama's
            # /api/show, answered by the worker
            translated = ["/v1/messages", "/v1/responses", "/api/chat", "/api/generate",
                          "/api/show"]
            async with s.get(a["worker"] + "/health") as r:
                h = await r.json()
                assert h["translated"] == translated
                assert h["paths"] == ["/v1/chat/completions", "/v1/completions", *translated]
            async with s.get(b["worker"] + "/health") as r:  # --paths overrides the table
                h = await r.json()
                assert h["translated"] == translated
                assert h["paths"] == ["/v1/chat/completions", "/v1/rerank", *translated]
            async with s.get(c["worker"] + "/health") as r:  # OpenAI itself: any path
                assert (await r.json())["paths"] is None


def test_paths_must_be_paths(tmp_path):
    from eldric import config, registry

    role = registry.load("worker")
    with pytest.raises(config.ConfigError):
        config.load({"worker": (role.config, role.defaults())}, None,
                    {"ELDRIC_WORKER_PATHS": "v1/chat"}, {})


async def test_models_retrieve(fake_openai_server, tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        client = openai.AsyncOpenAI(base_url=urls["worker"] + "/v1", api_key="unused")
        got = await client.models.retrieve(MODELS[0])  # "org/name": a slash in the id
        assert got.id == MODELS[0] and got.owned_by == "vllm"
        with pytest.raises(openai.NotFoundError) as info:
            await client.models.retrieve("nope")
        assert info.value.body["code"] == "model_not_found"
        await client.close()
