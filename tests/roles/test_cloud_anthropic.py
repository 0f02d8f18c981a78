"""Anthropic behind the cloud role, end to end with the openai SDK (the fake replays
Anthropic's documented SSE transcripts)."""

from __future__ import annotations

import json

import aiohttp
import openai

from tests.conftest import run_cloud, url_of
from tests.fakes import anthropic as fake
from tests.fakes import openai_server
from tests.fakes.openai_server import KNOBS as OAI_KNOBS

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


async def test_text_tools_streaming_and_usage(anthropic_server, tmp_path):
    backends = f"anthropic:{url_of(anthropic_server)}:{fake.API_KEY}"
    async with run_cloud(tmp_path, backends) as urls:
        client = openai.AsyncOpenAI(base_url=urls["cloud"] + "/v1", api_key="unused")
        models = {m.id: m.owned_by async for m in client.models.list()}
        assert models[fake.MODEL] == "anthropic"
        reply = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "text"}])
        assert reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
        sent = anthropic_server.app[fake.KNOBS].requests[-1]
        assert sent["body"]["system"] and sent["body"]["max_tokens"] > 0
        assert sent["headers"]["x-api-key"] == fake.API_KEY
        # Two parallel tool calls, streamed, arguments split mid-JSON: reassembled by index.
        stream = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "tools"}], tools=TOOLS,
            stream=True, stream_options={"include_usage": True})
        args: dict[int, str] = {}
        finish, usage = None, None
        async for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    args[call.index] = args.get(call.index, "") + (call.function.arguments or "")
        assert finish == "tool_calls" and sorted(args) == [0, 1]
        assert all(isinstance(json.loads(a), dict) for a in args.values())
        assert usage is not None and usage.completion_tokens > 0
        await client.close()
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["cloud"] + "/metrics") as r:
                text = await r.text()
    assert f'eldric_cloud_requests_total{{backend="anthropic",model="{fake.MODEL}"}} 2.0' in text
    assert 'kind="completion"' in text


async def _anthropic_then_backup(anthropic_server, aiohttp_server) -> str:  # type: ignore[no-untyped-def]
    """--backends: the fake Anthropic first, then an OpenAI-compatible backup that serves
    the same model."""
    backup = await aiohttp_server(openai_server.make_app())
    backup.app[OAI_KNOBS].models = [fake.MODEL]
    return f"anthropic:{url_of(anthropic_server)}:{fake.API_KEY},backup:{url_of(backup)}/v1"


async def test_errors_mapped_and_overloaded_fails_over(anthropic_server, aiohttp_server, tmp_path):
    backends = await _anthropic_then_backup(anthropic_server, aiohttp_server)
    async with run_cloud(tmp_path, backends) as urls:
        async with aiohttp.ClientSession() as s:
            anthropic_server.app[fake.KNOBS].scenario = "overloaded"
            async with s.post(urls["cloud"] + "/v1/chat/completions",
                              json={"model": fake.MODEL, "messages": [
                                  {"role": "user", "content": "hi"}]}) as r:
                # Anthropic answered 529 overloaded: the next backend listing it served.
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "backup"
            anthropic_server.app[fake.KNOBS].scenario = None
            async with s.post(urls["cloud"] + "/v1/chat/completions",
                              json={"model": f"anthropic/{fake.MODEL}", "temperature": 1.7,
                                    "messages": [{"role": "user", "content": "hi"}]}) as r:
                assert r.status == 400 and (await r.json())["error"]["param"] == "temperature"


async def test_a_garbled_200_fails_over_like_a_5xx(anthropic_server, aiohttp_server, tmp_path):
    backends = await _anthropic_then_backup(anthropic_server, aiohttp_server)
    async with run_cloud(tmp_path, backends) as urls:
        anthropic_server.app[fake.KNOBS].scenario = "garbled"
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["cloud"] + "/v1/chat/completions",
                              json={"model": fake.MODEL, "messages": [
                                  {"role": "user", "content": "hi"}]}) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "backup"
            async with s.post(urls["cloud"] + "/v1/chat/completions",
                              json={"model": f"anthropic/{fake.MODEL}", "messages": [
                                  {"role": "user", "content": "hi"}]}) as r:
                err = (await r.json())["error"]
                assert r.status == 503 and "cannot read" in err["message"], err


async def test_refused_key_fails_over_never_the_clients_401(anthropic_server, tmp_path):
    async with run_cloud(tmp_path, f"anthropic:{url_of(anthropic_server)}:sk-ant-wrong") as urls:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["cloud"] + "/api/v1/backends") as r:
                (b,) = (await r.json())["backends"]
            assert b["auth_failed"] is True and b["healthy"] is False
            async with s.post(urls["cloud"] + "/v1/chat/completions",
                              json={"model": f"anthropic/{fake.MODEL}",
                                    "messages": [{"role": "user", "content": "hi"}]}) as r:
                err = (await r.json())["error"]
            assert r.status == 503 and "API key is refused" in err["message"]
