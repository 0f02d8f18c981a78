"""Cohere's v2 API end to end: the fake Cohere (tests/fakes/cohere.py) behind the cloud
role and the worker role, driven with the official openai SDK (rerank with aiohttp)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import anthropic
import openai
import pytest

from tests.backends import harness
from tests.conftest import url_of
from tests.fakes import cohere as fake

MODEL = fake.CHAT_MODEL
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "the weather in a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}]


def cloud(tmp_path, *servers):  # type: ignore[no-untyped-def]
    """A cloud role whose backends are these fakes (type cohere, in this order)."""
    return harness.cloud(tmp_path, [
        {"name": f"co{i}", "type": "cohere", "url": url_of(s), "api_key": fake.API_KEY,
         "priority": 10 * (i + 1)} for i, s in enumerate(servers)])


@pytest.fixture
async def cohere_server(aiohttp_server):
    return await aiohttp_server(fake.make_app())


_client = harness.client
ROLES = pytest.mark.parametrize("role", ["cloud", "worker"])


@contextlib.asynccontextmanager
async def front(role: str, tmp_path, server, model: str = MODEL):  # type: ignore[no-untyped-def]
    """The role in front of one fake Cohere (the worker: --backend cohere), once the
    model is listed."""
    ctx = cloud(tmp_path, server) if role == "cloud" else harness.worker(
        tmp_path, "cohere", url_of(server), fake.API_KEY)
    async with ctx as url:
        await harness.listed(url, model)
        yield url


async def _ready(url: str, model: str = MODEL) -> None:
    await harness.listed(url, model)


def _sent(server, path: str = "/v2/chat") -> list[dict]:
    return [r for r in server.app[fake.KNOBS].requests if r["path"] == path]


@ROLES
async def test_chat_whole_and_streamed(role, tmp_path, cohere_server):
    async with front(role, tmp_path, cohere_server) as url:
        c = _client(url)
        raw = await c.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "system", "content": "brief"},
                                   {"role": "user", "content": "hi"}], max_tokens=20,
            extra_body={"documents": ["Toronto is in Canada"]})
        reply = raw.parse()
        assert raw.headers.get("X-Eldric-Backend") == ("co0" if role == "cloud" else None)
        assert reply.choices[0].message.content == "Hello! How can I help?"
        assert reply.choices[0].finish_reason == "stop"
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 8)
        sent = _sent(cohere_server)[-1]
        assert sent["headers"]["Authorization"] == f"Bearer {fake.API_KEY}"
        assert sent["body"]["messages"][0] == {"role": "system", "content": "brief"}
        assert sent["body"]["max_tokens"] == 20 and sent["body"]["stream"] is False
        assert sent["body"]["documents"] == ["Toronto is in Canada"]

        stream = await c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        text, finish, usage = "", None, None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        assert text == "Hello! How can I help?" and finish == "stop"
        assert usage.total_tokens == 20
        assert _sent(cohere_server)[-1]["headers"]["Accept"] == "text/event-stream"


@ROLES
async def test_tools_whole_and_streamed(role, tmp_path, cohere_server):
    async with front(role, tmp_path, cohere_server) as url:
        c = _client(url)
        msgs = [{"role": "user", "content": "tools"}]
        reply = await c.chat.completions.create(model=MODEL, messages=msgs, tools=TOOLS)
        call = reply.choices[0].message.tool_calls[0]
        assert reply.choices[0].finish_reason == "tool_calls"
        assert (call.id, call.function.name) == ("get_weather_9b1k", "get_weather")
        assert json.loads(call.function.arguments) == {"location": "Toronto"}
        assert _sent(cohere_server)[-1]["body"]["tools"][0]["function"]["name"] == "get_weather"

        args, names, finish = "", [], None
        async for chunk in await c.chat.completions.create(model=MODEL, messages=msgs,
                                                           tools=TOOLS, stream=True):
            delta = chunk.choices[0].delta
            for tc in delta.tool_calls or []:
                names += [tc.function.name] if tc.function.name else []
                args += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        assert names == ["get_weather"] and json.loads(args) == {"location": "Toronto"}
        assert finish == "tool_calls"

        # The tool's result goes back as Cohere's tool message, the call as tool_calls.
        await c.chat.completions.create(model=MODEL, tools=TOOLS, messages=[
            *msgs, reply.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "21C, sunny"}])
        sent = _sent(cohere_server)[-1]["body"]["messages"]
        assert sent[1]["tool_calls"][0]["id"] == "get_weather_9b1k"
        assert sent[2] == {"role": "tool", "tool_call_id": "get_weather_9b1k",
                           "content": "21C, sunny"}


async def test_cloud_bad_body_and_backend_error(tmp_path, cohere_server):
    async with cloud(tmp_path, cohere_server) as url:
        await _ready(url)
        c = _client(url)
        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model=MODEL, messages=[{"role": "user",
                                                                    "content": "hi"}], n=2)
        assert info.value.status_code == 400 and info.value.body["param"] == "n"
        # Cohere's own 429 is retryable: with no other backend, eldric's 503 naming it.
        with pytest.raises(openai.InternalServerError) as info:
            await c.chat.completions.create(model=MODEL,
                                            messages=[{"role": "user", "content": "ratelimited"}])
        assert info.value.status_code == 503 and "Trial key" in info.value.message
        assert info.value.body["code"] == "upstream_unavailable"
        # Cohere's 400 is the client's answer, as Cohere said it (no failover).
        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model=MODEL,
                                            messages=[{"role": "user", "content": "invalid"}])
        assert info.value.status_code == 400 and "at least 1 token" in info.value.message


async def test_cloud_429_and_503_fail_over_to_the_next_backend(tmp_path, aiohttp_server):
    first, second = await aiohttp_server(fake.make_app()), await aiohttp_server(fake.make_app())
    async with cloud(tmp_path, first, second) as url:
        await _ready(url)
        c = _client(url)
        for scenario in ("ratelimited", "overloaded"):
            first.app[fake.KNOBS].scenario = scenario
            raw = await c.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}])
            assert raw.headers["X-Eldric-Backend"] == "co1"
            assert raw.parse().choices[0].message.content == "Hello! How can I help?"
        assert len(_sent(first)) == 2 and len(_sent(second)) == 2


async def test_a_stream_failing_before_any_content_fails_over(tmp_path, aiohttp_server):
    """Cohere's message-end with ERROR before any content: nothing reached the client, so
    it is the error reply it stands for (a 502 another backend is tried after), not a 200
    holding one error event."""
    first, second = await aiohttp_server(fake.make_app()), await aiohttp_server(fake.make_app())
    first.app[fake.KNOBS].scenario = "error_first"
    async with cloud(tmp_path, first, second) as url:
        await _ready(url)
        events = await _sse(url, "text")
        assert b'"error"' not in b"".join(events) and events[-1] == b"data: [DONE]"
        assert any(b"Hello" in e for e in events)
        assert len(_sent(first)) == 1 and len(_sent(second)) == 1
    async with front("worker", tmp_path, first) as url:  # nobody else: the 502 itself
        async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json={
                "model": MODEL, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 502
            assert (await r.json())["error"]["code"] == "upstream_error"


async def test_cloud_backend_down_is_a_503(tmp_path, aiohttp_server):
    server = await aiohttp_server(fake.make_app())
    async with cloud(tmp_path, server) as url:
        await _ready(url)
        await server.close()  # it was up, it went away
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions", json={
                    "model": MODEL, "messages": [{"role": "user", "content": "hi"}]}) as r:
                assert r.status == 503
                assert (await r.json())["error"]["code"] == "upstream_unavailable"


async def _sse(url: str, content: str) -> list[bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/chat/completions", json={
                "model": MODEL, "stream": True,
                "messages": [{"role": "user", "content": content}]}) as r:
            assert r.status == 200
            return [e for e in (await r.read()).split(b"\n\n") if e]


@ROLES
async def test_stream_cut_or_failed_midway_ends_with_one_error_event(role, tmp_path, cohere_server):
    async with front(role, tmp_path, cohere_server) as url:
        for content in ("cut", "error_midstream"):
            events = await _sse(url, content)
            assert any(b"Hel" in e or b"one" in e for e in events[:-1])  # it had begun
            assert b"[DONE]" not in events[-1]
            err = json.loads(events[-1].removeprefix(b"data: "))["error"]
            assert err["code"] == "upstream_error" and err["type"] == "api_error"
            assert sum(b'"error"' in e for e in events) == 1
        assert "internal model failure" in err["message"]  # Cohere's own word, kept


@ROLES
async def test_client_leaving_cancels_the_upstream_request(role, tmp_path, cohere_server):
    async with front(role, tmp_path, cohere_server) as url:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions", json={
                    "model": MODEL, "stream": True,
                    "messages": [{"role": "user", "content": "slow"}]}) as r:
                await r.content.readline()  # the stream began
        await asyncio.wait_for(cohere_server.app[fake.KNOBS].left.wait(), 5)


@ROLES
async def test_embeddings_with_the_openai_sdk(role, tmp_path, cohere_server):
    async with front(role, tmp_path, cohere_server, "embed-v4.0") as url:
        c = _client(url)
        # The SDK asks for base64 by default and decodes it: the floats survive.
        got = await c.embeddings.create(model="embed-v4.0", input=["hello", "hi"])
        assert [d.embedding for d in got.data] == [
            pytest.approx([0.5, 0.6, 0.7, 0.8]), pytest.approx([0.2, 0.3, 0.4, 0.5])]
        assert got.usage.prompt_tokens == 2
        sent = _sent(cohere_server, "/v2/embed")[-1]["body"]
        assert sent["texts"] == ["hello", "hi"] and sent["input_type"] == "search_document"
        got = await c.embeddings.create(model="embed-v4.0", input="hello",
                                        encoding_format="float", dimensions=2)
        assert got.data[0].embedding == pytest.approx([0.5, 0.6])


async def test_rerank_in_the_cohere_and_jina_shapes(tmp_path, cohere_server):
    # The worker's: the cloud role routes /v1/rerank by model once part I's rerank head
    # is in (issue 20); the egress is the same there.
    async with front("worker", tmp_path, cohere_server, "rerank-v3.5") as url:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/rerank", json={
                    "model": "rerank-v3.5", "query": "capital of france", "top_n": 2,
                    "documents": ["Berlin is in Germany", {"text": "Paris is the capital of france"},
                                  "the capital of Spain"]}) as r:
                assert r.status == 200, await r.text()
                got = await r.json()
            assert [x["index"] for x in got["results"]] == [1, 2]
            assert got["results"][0]["document"] == {"text": "Paris is the capital of france"}
            assert 0 < got["results"][1]["relevance_score"] < got["results"][0]["relevance_score"]
            assert got["meta"]["billed_units"] == {"search_units": 1}
            sent = _sent(cohere_server, "/v2/rerank")[-1]["body"]
            assert sent["documents"][1] == "Paris is the capital of france"
            async with s.post(url + "/v1/rerank", json={
                    "model": "rerank-v3.5", "query": "q", "documents": [7]}) as r:
                assert r.status == 400
                assert (await r.json())["error"]["param"] == "documents[0]"


async def test_worker_errors_are_mapped(tmp_path, cohere_server):
    async with front("worker", tmp_path, cohere_server) as url:
        c = _client(url)
        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model=MODEL, messages=[{"role": "user",
                                                                    "content": "invalid"}])
        assert "at least 1 token" in info.value.message
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(model=MODEL,
                                            messages=[{"role": "user", "content": "ratelimited"}])
        assert info.value.status_code == 429
        await cohere_server.close()
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(model=MODEL, messages=[{"role": "user",
                                                                    "content": "hi"}])
        assert info.value.status_code == 503


@ROLES
async def test_an_anthropic_client_calls_cohere_tools(role, tmp_path, cohere_server):
    """Messages -> chat -> Cohere's v2 chat and back: a tool call, streamed, with the
    official anthropic SDK."""
    async with front(role, tmp_path, cohere_server) as url:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0)
        tools = [{"name": "get_weather", "description": "the weather",
                  "input_schema": TOOLS[0]["function"]["parameters"]}]
        async with client.messages.stream(model=MODEL, max_tokens=64, tools=tools, messages=[
                {"role": "user", "content": "tools"}]) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "tool_use"
        use = [b for b in final.content if b.type == "tool_use"][0]
        assert (use.name, use.input) == ("get_weather", {"location": "Toronto"})
        assert _sent(cohere_server)[-1]["body"]["tools"][0]["function"]["name"] == "get_weather"
