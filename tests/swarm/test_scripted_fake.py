"""The scripted backend (tests/fakes/scripted.py) answers as the OpenAI API does, follows
its script, and records what it was asked: the swarm's flow tests rely on all three."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from tests.fakes import scripted

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "capital?"}]


async def test_rules_by_model_substring_and_call_index(aiohttp_server):
    script = await scripted.serve(aiohttp_server, ["a", "b"])
    script.on(model="b", call=1, text="second b")
    script.on(contains="judge", text="judged")
    script.on(model="a", text="Paris is the capital")
    client = openai.AsyncOpenAI(base_url=script.url + "/v1", api_key="x", max_retries=0)
    got = []
    for model, prompt in [("a", "capital?"), ("b", "x"), ("b", "y"), ("b", "judge this")]:
        reply = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}])
        got.append(reply.choices[0].message.content)
    assert got == ["Paris is the capital", "b answer 0", "second b", "judged"]
    assert script.order() == ["a", "b", "b", "b"]
    assert [c.index for c in script.asked("b")] == [0, 1, 2]
    assert script.asked("b")[2].last_user == "judge this"
    assert all(c.outcome == "ok" for c in script.calls)
    assert reply.usage.completion_tokens == 1
    await client.close()


async def test_streams_token_by_token_with_usage(aiohttp_server):
    script = await scripted.serve(aiohttp_server, ["a"])
    script.on(text="one two three", delay=0.05)
    client = openai.AsyncOpenAI(base_url=script.url + "/v1", api_key="x", max_retries=0)
    stream = await client.chat.completions.create(
        model="a", messages=MSGS, stream=True, stream_options={"include_usage": True})
    parts, times, usage = [], [], None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
            times.append(asyncio.get_running_loop().time())
        usage = chunk.usage or usage
    assert parts == ["one", " two", " three"]
    assert times[-1] - times[0] >= 0.08  # really one at a time, not one burst
    assert usage.completion_tokens == 3
    (call,) = script.calls
    assert call.system == "be brief" and call.body["stream"] is True
    assert call.first_byte is not None and call.outcome == "ok"
    await client.close()


async def test_tool_calls_plain_and_streamed(aiohttp_server):
    script = await scripted.serve(aiohttp_server, ["a"])
    script.on(tool_calls=[("call_1", "get_weather", '{"city": "Paris", "unit": "c"}')])
    client = openai.AsyncOpenAI(base_url=script.url + "/v1", api_key="x", max_retries=0)
    reply = await client.chat.completions.create(model="a", messages=MSGS)
    (tc,) = reply.choices[0].message.tool_calls
    assert (tc.id, tc.function.name, json.loads(tc.function.arguments)) == \
        ("call_1", "get_weather", {"city": "Paris", "unit": "c"})
    assert reply.choices[0].finish_reason == "tool_calls"
    async with client.chat.completions.stream(model="a", messages=MSGS) as stream:
        final = await stream.get_final_completion()
    (tc,) = final.choices[0].message.tool_calls
    assert tc.function.arguments == '{"city": "Paris", "unit": "c"}'
    await client.close()


async def test_errors_garbage_and_a_break_mid_stream(aiohttp_server):
    script = await scripted.serve(aiohttp_server, ["a", "b", "c"])
    script.on(model="a", status=503, message="overloaded")
    script.on(model="b", raw=b"<html>not json</html>")
    script.on(model="c", text="x y z", die_after=1)
    client = openai.AsyncOpenAI(base_url=script.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="a", messages=MSGS)
    assert info.value.status_code == 503
    assert info.value.body["message"] == "overloaded"
    async with aiohttp.ClientSession() as s:
        async with s.post(script.url + "/v1/chat/completions",
                          json={"model": "b", "messages": MSGS}) as r:
            assert r.status == 200 and await r.read() == b"<html>not json</html>"
        async with s.post(script.url + "/v1/chat/completions",
                          json={"model": "c", "messages": MSGS, "stream": True}) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        async with s.post(script.url + "/v1/chat/completions",
                          json={"model": "nope", "messages": MSGS}) as r:
            assert r.status == 404
    assert [c.outcome for c in script.calls] == ["error", "garbage", "died"]


async def test_a_hang_and_a_slow_stream_record_the_client_leaving(aiohttp_server):
    script = await scripted.serve(aiohttp_server, ["a", "b"])
    script.on(model="a", hang=True)
    script.on(model="b", text="w " * 100, delay=0.05)
    async with aiohttp.ClientSession() as s:
        with pytest.raises(asyncio.TimeoutError):
            async with s.post(script.url + "/v1/chat/completions",
                              json={"model": "a", "messages": MSGS},
                              timeout=aiohttp.ClientTimeout(total=0.2)) as r:
                await r.read()
        r = await s.post(script.url + "/v1/chat/completions",
                         json={"model": "b", "messages": MSGS, "stream": True})
        await r.content.readuntil(b"\n\n")
        r.close()
    await script.wait(lambda sc: not sc.running(), timeout=2)
    assert [c.outcome for c in script.calls] == ["cancelled", "cancelled"]
    assert all(c.left for c in script.calls)
    assert script.calls[1].ended - script.calls[1].started < 1
