"""/v1/responses at the cloud worker in front of an OpenAI-compatible provider (the fake,
which has Chat Completions only): translated, with the cloud's own state when it is the
first hop, driven with the openai SDK: text, streams, function calls with their streamed
arguments exact, the function_call_output round trip, chains, retrieve, delete."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import run_cloud, url_of
from tests.fakes import openai_server
from tests.fakes.openai_server import KNOBS

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
ARGS = '{"city":"Paris","unit":"celsius"}'
TOOLS = [{"type": "function", "name": "get_weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                          "unit": {"type": "string"}}}}]


@pytest.fixture
async def cloud(aiohttp_server, tmp_path):
    server = await aiohttp_server(openai_server.make_app())
    async with run_cloud(tmp_path, f"fake:{url_of(server)}/v1") as urls:
        yield openai.AsyncOpenAI(base_url=urls["cloud"] + "/v1", api_key="k",
                                 max_retries=0), server.app[KNOBS]


def sent(knobs) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(knobs.requests[-1]["body"])


async def test_text_whole_and_streamed(cloud):
    c, knobs = cloud
    r = await c.responses.create(model=MODEL, input="hi", instructions="be brief")
    assert r.status == "completed" and r.output_text == " w0 w1 w2 w3 w4"
    assert knobs.requests[-1]["path"] == "/v1/chat/completions"
    assert sent(knobs)["messages"] == [{"role": "system", "content": "be brief"},
                                      {"role": "user", "content": "hi"}]
    async with c.responses.stream(model=MODEL, input="more",
                                  previous_response_id=r.id) as stream:
        final = await stream.get_final_response()
    assert final.output_text == " w0 w1 w2 w3 w4" and final.usage.output_tokens == 5
    assert sent(knobs)["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": " w0 w1 w2 w3 w4"},
        {"role": "user", "content": "more"}]
    assert (await c.responses.retrieve(final.id)).previous_response_id == r.id
    await c.responses.delete(final.id)
    with pytest.raises(openai.NotFoundError) as info:
        await c.responses.retrieve(final.id)
    assert info.value.code == "response_not_found"


async def test_function_calls_round_trip(cloud):
    c, knobs = cloud
    knobs.tool_calls = [("call_0", "get_weather", ARGS), ("call_1", "get_time", "{}")]
    deltas, events = [], []
    async with c.responses.stream(model=MODEL, input="weather?", tools=TOOLS) as stream:
        async for event in stream:
            events.append(event.type)
            if event.type == "response.function_call_arguments.delta":
                deltas.append((event.output_index, event.delta))
        calls = (await stream.get_final_response()).output
    assert "".join(d for i, d in deltas if i == 0) == ARGS
    assert [d for i, d in deltas if i == 0] == [ARGS[j:j + 8] for j in range(0, len(ARGS), 8)]
    assert [(o.type, o.call_id, o.name, o.arguments) for o in calls] == [
        ("function_call", "call_0", "get_weather", ARGS),
        ("function_call", "call_1", "get_time", "{}")]
    assert sent(knobs)["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": TOOLS[0]["parameters"]}}]
    # the results go back with the chain: the calls are in the conversation already
    knobs.tool_calls = None
    first = await c.responses.create(model=MODEL, input="weather?", tools=TOOLS)
    knobs.tool_calls = [("call_0", "get_weather", ARGS)]
    ask = await c.responses.create(model=MODEL, input="and now?", tools=TOOLS,
                                   previous_response_id=first.id)
    assert ask.output[0].type == "function_call" and ask.output[0].arguments == ARGS
    knobs.tool_calls = None
    done = await c.responses.create(model=MODEL, tools=TOOLS, previous_response_id=ask.id,
                                    input=[{"type": "function_call_output",
                                            "call_id": ask.output[0].call_id,
                                            "output": "18C"}])
    assert done.output_text == " w0 w1 w2 w3 w4"
    messages = sent(knobs)["messages"]
    assert messages[-2:] == [
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_0", "type": "function",
            "function": {"name": "get_weather", "arguments": ARGS}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "18C"}]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "tool"]


async def test_an_upstream_that_dies_mid_stream_fails_the_response(cloud):
    c, knobs = cloud
    knobs.die_after = 2
    events = [e async for e in await c.responses.create(model=MODEL, input="hi", stream=True)]
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-2].code == "upstream_error"
    assert events[-1].response.status == "failed"
    with pytest.raises(openai.NotFoundError):  # a failed response continues nothing
        await c.responses.retrieve(events[-1].response.id)


async def test_built_in_tools_are_refused(cloud):
    c, knobs = cloud
    with pytest.raises(openai.BadRequestError) as info:
        await c.responses.create(model=MODEL, input="hi", tools=[{"type": "file_search",
                                                                  "vector_store_ids": ["v"]}])
    assert info.value.code == "unsupported_tool" and "file_search" in info.value.message
    assert knobs.requests == []
