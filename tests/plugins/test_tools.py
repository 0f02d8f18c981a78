"""Plugin tools end to end: the openai SDK -> the edge (calculator and clock tool
plugins, real child processes) -> router -> a scripted backend that emits OpenAI tool
calls exactly (tests/fakes/scripted.py: whole, and streamed id and name first, then the
arguments in pieces). The edge offers the tools, runs the plugin's tool, appends the
result, asks again and gives the client the final answer; the client's own tools go
back to the client untouched; mixed, the client's win."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from tests.conftest import metric
from tests.fakes import scripted
from tests.plugins.kit import AUTH, KEY, edge, plugins_dir, router

M = "m-tools"
ASK = [{"role": "user", "content": "What is (17+4)*3.5?"}]
CALC = ("call_1", "calculate", json.dumps({"expression": "(17+4)*3.5"}))
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


def _tools_of(call: scripted.Call) -> list[str]:
    return [t["function"]["name"] for t in call.body.get("tools") or []]


async def _cluster(tmp_path, aiohttp_server, script_rules, **edge_flags):  # type: ignore[no-untyped-def]
    script = await scripted.serve(aiohttp_server, [M, "m-plain"])
    for rule in script_rules:
        script.on(**rule)
    return script, plugins_dir(tmp_path, "calculator", "clock"), edge_flags


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_plugin_tool_round_trip(tmp_path, aiohttp_server, stream):
    script, plugins, _ = await _cluster(tmp_path, aiohttp_server, [
        {"model": M, "call": 0, "tool_calls": [CALC]},
        {"model": M, "call": 1, "text": "It is 73.5."}])
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        if stream:
            text, finish, usage = "", None, None
            async for chunk in await client.chat.completions.create(
                    model=M, messages=ASK, stream=True, stream_options={"include_usage": True}):
                if chunk.choices:
                    assert not chunk.choices[0].delta.tool_calls, "a plugin's call reached the client"
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
                usage = chunk.usage or usage
        else:
            reply = await client.chat.completions.create(model=M, messages=ASK)
            text, finish, usage = (reply.choices[0].message.content,
                                   reply.choices[0].finish_reason, reply.usage)
            assert not reply.choices[0].message.tool_calls
        await client.close()
    assert text.strip() == "It is 73.5." and finish == "stop"
    first, second = script.asked(M)
    assert {"calculate", "current_time"} <= set(_tools_of(first))
    assert first.body["stream"] is stream and second.body["stream"] is stream
    # the model's turn, then the tool's result, joined the conversation
    assistant, result = second.messages[-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert assistant["tool_calls"][0]["function"]["name"] == "calculate"
    assert result == {"role": "tool", "tool_call_id": "call_1", "content": "73.5"}
    # usage: both rounds
    assert usage.completion_tokens == 3 and usage.prompt_tokens > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_the_clients_own_tool_calls_go_back_to_it_and_mixed_the_client_wins(
        tmp_path, aiohttp_server, stream):
    weather = ("call_w", "get_weather", json.dumps({"city": "Paris"}))
    script, plugins, _ = await _cluster(tmp_path, aiohttp_server, [
        {"model": M, "contains": "only mine", "tool_calls": [weather]},
        {"model": M, "contains": "both", "tool_calls": [CALC, weather]}])
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        for prompt in ("only mine", "both"):
            msgs = [{"role": "user", "content": prompt}]
            if stream:
                calls: dict[int, dict] = {}
                finish = None
                async for chunk in await client.chat.completions.create(
                        model=M, messages=msgs, tools=[WEATHER], stream=True):
                    for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                        c = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                        c["id"] += tc.id or ""
                        c["name"] += (tc.function.name or "") if tc.function else ""
                        c["args"] += (tc.function.arguments or "") if tc.function else ""
                    if chunk.choices and chunk.choices[0].finish_reason:
                        finish = chunk.choices[0].finish_reason
                got = [(c["id"], c["name"], c["args"]) for _, c in sorted(calls.items())]
            else:
                reply = await client.chat.completions.create(model=M, messages=msgs,
                                                             tools=[WEATHER])
                finish = reply.choices[0].finish_reason
                got = [(c.id, c.function.name, c.function.arguments)
                       for c in reply.choices[0].message.tool_calls]
            assert got == [weather], prompt
            assert finish == "tool_calls", prompt
        await client.close()
    # one call each: the plugin's calculate was not run for the mixed reply either
    assert len(script.asked(M)) == 2
    assert _tools_of(script.asked(M)[0])[0] == "get_weather"  # the client's first


async def test_rounds_stop_at_max_tool_rounds_and_a_failing_tool_is_the_models_news(
        tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [M])
    script.on(model=M, tool_calls=[("c", "explode", "{}")])  # a model that never stops
    own = {"boom": ({"type": "tool", "timeout_ms": 2000}, (
        "from eldric import plugin\n"
        "@plugin.tool(name='explode', description='always fails')\n"
        "def explode():\n"
        "    raise RuntimeError('kaboom')\n"
        "plugin.run()\n"))}
    plugins = plugins_dir(tmp_path, own=own)
    async with router(tmp_path, script.url) as r, \
            edge(tmp_path, r["router"], plugins, max_tool_rounds=2) as e:
        async with aiohttp.ClientSession() as s:
            async with s.post(e["edge"] + "/v1/chat/completions", headers=AUTH,
                              json={"model": M, "messages": ASK}) as resp:
                body = await resp.json()
                assert resp.status == 200, body
                assert resp.headers["X-Eldric-Tool-Rounds"] == "2"
    calls = script.asked(M)
    assert len(calls) == 3  # two rounds of tools, then one with no plugin tool offered
    assert "explode" in _tools_of(calls[0]) and "explode" in _tools_of(calls[1])
    assert "explode" not in _tools_of(calls[2])
    result = calls[1].messages[-1]
    assert result["role"] == "tool" and result["content"].startswith("error: the tool explode")
    # the last reply still asked for the plugin's tool: dropped, the client gets an answer
    msg = body["choices"][0]
    assert "tool_calls" not in msg["message"] and msg["finish_reason"] == "stop"


async def test_no_tools_when_the_request_says_none_or_the_model_is_not_covered(
        tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [M, "m-plain"])
    plugins = plugins_dir(tmp_path, "calculator")
    manifest = json.loads((plugins / "calculator" / "manifest.json").read_text())
    manifest["applies_to"] = ["m-tool*"]
    (plugins / "calculator" / "manifest.json").write_text(json.dumps(manifest))
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        await client.chat.completions.create(model="m-plain", messages=ASK)
        await client.chat.completions.create(model=M, messages=ASK,
                                             extra_headers={"X-Eldric-Tools": "none"})
        await client.chat.completions.create(model=M, messages=ASK,
                                             extra_headers={"X-Eldric-Tools": "clock"})
        await client.chat.completions.create(model=M, messages=ASK,
                                             extra_headers={"X-Eldric-Tools": "calculator"})
        await client.close()
    assert [_tools_of(c) for c in script.calls] == [[], [], [], ["calculate"]]


async def test_a_model_reply_the_loop_cannot_read_is_a_502_and_a_model_error_is_relayed(
        tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [M])
    script.on(model=M, contains="garbage", raw=b"this is no chat completion")
    script.on(model=M, contains="refused", status=400, message="tools are not supported")
    script.on(model=M, contains="dies", call=None, text="one two three four", die_after=2)
    plugins = plugins_dir(tmp_path, "calculator")
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        async with aiohttp.ClientSession() as s:
            for stream in (False, True):
                for prompt, status, code in (("garbage", 502, "bad_upstream_reply"),
                                             ("refused", 400, None)):
                    async with s.post(e["edge"] + "/v1/chat/completions", headers=AUTH, json={
                            "model": M, "stream": stream,
                            "messages": [{"role": "user", "content": prompt}]}) as resp:
                        body = await resp.json()
                        assert resp.status == status, (prompt, stream, body)
                        assert "message" in body["error"]
                        if code:
                            assert body["error"]["code"] == code
                        else:
                            assert "tools are not supported" in body["error"]["message"]
            # broken mid-stream, after the first tokens went out: the stream's error event
            async with s.post(e["edge"] + "/v1/chat/completions", headers=AUTH, json={
                    "model": M, "stream": True,
                    "messages": [{"role": "user", "content": "dies"}]}) as resp:
                assert resp.status == 200
                text = await resp.text()
    events = [json.loads(x[6:]) for x in text.split("\n\n") if x.startswith("data: {")]
    assert "error" in events[-1] and text.rstrip().endswith("data: [DONE]"), text
    assert "".join(ev["choices"][0]["delta"].get("content") or "" for ev in events[:-1]
                   if ev.get("choices")) == "one two"


async def test_a_tool_round_trip_counts_the_clients_request_once(tmp_path, aiohttp_server):
    script, plugins, _ = await _cluster(tmp_path, aiohttp_server, [
        {"model": M, "call": 0, "tool_calls": [CALC]}, {"model": M, "text": "73.5"}])
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        await client.chat.completions.create(model=M, messages=ASK)
        await client.close()
        assert len(script.asked(M)) == 2
        assert await metric(e["edge"], 'eldric_edge_client_requests_total{client="key-1"}',
                            ssl=False) == 1


async def test_a_client_leaving_mid_answer_lets_the_models_stream_go(tmp_path, aiohttp_server):
    script, plugins, _ = await _cluster(tmp_path, aiohttp_server, [
        {"model": M, "call": 0, "tool_calls": [CALC]},
        {"model": M, "text": " ".join(["word"] * 200), "delay": 0.02}])
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        async with aiohttp.ClientSession() as s:
            async with s.post(e["edge"] + "/v1/chat/completions", headers=AUTH, json={
                    "model": M, "stream": True, "messages": ASK}) as resp:
                async for line in resp.content:
                    if b"word" in line:
                        break  # the answer has begun: leave
        await script.wait(lambda sc: len(sc.asked(M)) == 2 and sc.asked(M)[1].ended, 5)
        assert script.asked(M)[1].left, "the model's stream went on without the client"
