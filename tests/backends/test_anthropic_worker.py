"""The Anthropic adapter (eldric/backends/native/anthropic.py) behind the worker:
`--backend anthropic` with its URL and key, the openai SDK's chat (tools streamed, the
usage chunk) and an Anthropic Messages client (translated to chat, then by the adapter
to Messages again) against the fake that replays Anthropic's documented transcripts; the
mid-stream cut and an overloaded 529 as the worker answers them."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.conftest import run_eldric, until, url_of
from tests.fakes import anthropic as fake

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def _worker(tmp_path, server):  # type: ignore[no-untyped-def]
    return run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="anthropic",
                      backend_url=url_of(server), backend_api_key=fake.API_KEY,
                      backend_options='{"vision": true}')


async def test_worker_fronts_anthropic_through_the_adapter(anthropic_server, tmp_path):
    async with _worker(tmp_path, anthropic_server) as urls:
        url = urls["worker"]
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x",
                                      max_retries=0) as client:
            models = await until(lambda: _models(client), timeout=10)
            assert fake.MODEL in models
            reply = await client.chat.completions.create(
                model=fake.MODEL, messages=[{"role": "user", "content": "text"}])
            assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
            sent = anthropic_server.app[fake.KNOBS].requests[-1]
            assert sent["path"] == "/v1/messages"
            assert sent["headers"]["x-api-key"] == fake.API_KEY
            assert sent["headers"]["anthropic-version"] == "2023-06-01"
            args: dict[int, str] = {}
            finish, usage = None, None
            async for chunk in await client.chat.completions.create(
                    model=fake.MODEL, messages=[{"role": "user", "content": "tools"}],
                    tools=TOOLS, stream=True, stream_options={"include_usage": True}):
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    finish = choice.finish_reason or finish
                    for call in choice.delta.tool_calls or []:
                        args[call.index] = args.get(call.index, "") + (
                            call.function.arguments or "")
            assert finish == "tool_calls" and sorted(args) == [0, 1]
            assert all(isinstance(json.loads(a), dict) for a in args.values())
            assert usage is not None and usage.completion_tokens > 0
            anthropic_server.app[fake.KNOBS].scenario = "overloaded"
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(
                    model=fake.MODEL, messages=[{"role": "user", "content": "text"}])
            assert caught.value.status_code == 503  # Anthropic's 529, as eldric maps it
        anthropic_server.app[fake.KNOBS].scenario = None
        messages = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
        async with messages.messages.stream(
                model=fake.MODEL, max_tokens=64,
                messages=[{"role": "user", "content": "text"}]) as stream:
            text = "".join([t async for t in stream.text_stream])
        assert text and (await stream.get_final_message()).stop_reason == "end_turn"
        await messages.close()


async def test_a_cut_anthropic_stream_ends_in_one_error_event(anthropic_server, tmp_path):
    import aiohttp

    anthropic_server.app[fake.KNOBS].die_after = 3
    async with _worker(tmp_path, anthropic_server) as urls:
        async with openai.AsyncOpenAI(base_url=urls["worker"] + "/v1", api_key="x",
                                      max_retries=0) as client:
            await until(lambda: _models(client), timeout=10)
        async with aiohttp.ClientSession() as s, s.post(
                urls["worker"] + "/v1/chat/completions",
                json={"model": fake.MODEL, "stream": True,
                      "messages": [{"role": "user", "content": "text"}]}) as r:
            assert r.status == 200
            body = await r.read()
    events = [e for e in body.split(b"\n\n") if e]
    assert [e for e in events if b'"error"' in e] == [events[-1]]
    assert b"[DONE]" not in body


async def _models(client: openai.AsyncOpenAI) -> list[str]:
    try:
        return [m.id async for m in client.models.list()]
    except openai.APIStatusError:
        return []
