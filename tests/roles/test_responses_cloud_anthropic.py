"""/v1/responses at the cloud worker in front of Anthropic (the fake, which speaks the
Messages API only): the Responses request translated to chat, chat to Messages, and the
reply back the same two steps, driven with the openai SDK directly and through a router:
text whole and streamed, responses.stream(), the function tool round trip with the
streamed arguments exact, and a backend failing mid-stream."""

from __future__ import annotations

import contextlib

import aiohttp
import openai
import pytest

from tests.conftest import run_cloud, run_eldric, url_of
from tests.fakes import anthropic as fake

TOOLS = [{"type": "function", "name": "get_weather",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"},
                                                          "unit": {"type": "string"}}}}]
SF = '{"location": "San Francisco, CA", "unit": "fahrenheit"}'  # the transcript's, joined
PARIS = '{"location": "Paris"}'


@pytest.fixture(params=["cloud", "router"])
async def hop(request, anthropic_server, tmp_path):  # type: ignore[no-untyped-def]
    """(the openai client at the cloud worker or a router in front of it, the fake's knobs)"""
    async with contextlib.AsyncExitStack() as stack:
        urls = await stack.enter_async_context(run_cloud(
            tmp_path / "c", f"anthropic:{url_of(anthropic_server)}:{fake.API_KEY}"))
        if request.param == "router":
            urls = await stack.enter_async_context(run_eldric(
                "router", tmp_path / "r", port=0, bind="127.0.0.1", workers=urls["cloud"]))
        url = urls[request.param]
        yield (openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0),
               anthropic_server.app[fake.KNOBS], url)


def sent(knobs: fake.Knobs) -> dict:
    assert knobs.requests[-1]["path"] == "/v1/messages"
    return knobs.requests[-1]["body"]


async def test_text_whole_and_streamed(hop):
    c, knobs, url = hop
    r = await c.responses.create(model=fake.MODEL, input="text", instructions="be brief",
                                 max_output_tokens=32)
    assert (r.status, r.output_text) == ("completed", "Hello! How can I help?")
    assert (r.usage.input_tokens, r.usage.output_tokens) == (25, 15)
    assert sent(knobs) == {"model": fake.MODEL, "max_tokens": 32, "system": "be brief",
                           "messages": [{"role": "user", "content": "text"}], "stream": False}
    assert knobs.requests[-1]["headers"]["x-api-key"] == fake.API_KEY
    events = [e async for e in await c.responses.create(model=fake.MODEL, input="text",
                                                        stream=True)]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == [
        "Hello", "! How can I help?"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert sent(knobs)["stream"] is True
    async with c.responses.stream(model=fake.MODEL, input="text") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "Hello! How can I help?" and final.usage.output_tokens == 15
    async with aiohttp.ClientSession() as s:  # the Content-Types are the translator's
        ask = {"model": fake.MODEL, "input": "text"}
        async with s.post(url + "/v1/responses", json=ask) as resp:
            assert resp.headers["Content-Type"].startswith("application/json")
        async with s.post(url + "/v1/responses", json={**ask, "stream": True}) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            assert b"event: response.completed" in await resp.read()


async def test_function_calls_round_trip(hop):
    c, knobs, _ = hop
    deltas: dict[int, list[str]] = {}
    async with c.responses.stream(model=fake.MODEL, input="tools", tools=TOOLS) as stream:
        async for event in stream:
            if event.type == "response.function_call_arguments.delta":
                deltas.setdefault(event.output_index, []).append(event.delta)
        asked = await stream.get_final_response()
    calls = [o for o in asked.output if o.type == "function_call"]
    assert [(o.call_id, o.name, o.arguments) for o in calls] == [
        ("toolu_01SanFrancisco", "get_weather", SF), ("toolu_02Paris", "get_weather", PARIS)]
    assert ["".join(d) for d in deltas.values()] == [SF, PARIS]
    assert sent(knobs)["tools"] == [{"name": "get_weather",
                                     "input_schema": TOOLS[0]["parameters"]}]
    done = await c.responses.create(model=fake.MODEL, tools=TOOLS,
                                    previous_response_id=asked.id,
                                    input=[{"type": "function_call_output",
                                            "call_id": o.call_id, "output": "18C"}
                                           for o in calls])
    assert done.output_text == "Hello! How can I help?"
    turns = sent(knobs)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [(b["type"], b["id"], b["input"]) for b in turns[1]["content"]
            if b["type"] == "tool_use"] == [
        ("tool_use", "toolu_01SanFrancisco", {"location": "San Francisco, CA",
                                              "unit": "fahrenheit"}),
        ("tool_use", "toolu_02Paris", {"location": "Paris"})]
    assert [(b["type"], b["tool_use_id"]) for b in turns[2]["content"]] == [
        ("tool_result", "toolu_01SanFrancisco"), ("tool_result", "toolu_02Paris")]


@pytest.mark.parametrize("failure", ["error_event", "connection_lost"])
async def test_a_backend_failing_mid_stream_fails_the_response(hop, failure):
    c, knobs, _ = hop
    if failure == "connection_lost":
        knobs.die_after = 4  # after message_start, the block's start, a ping, "Hello"
    ask = "text" if failure == "connection_lost" else "error_midstream"
    events = [e async for e in await c.responses.create(model=fake.MODEL, input=ask,
                                                        stream=True)]
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-2].code == ("upstream_error" if failure == "connection_lost"
                               else "upstream_overloaded")
    assert events[-1].response.status == "failed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") \
        == ("Hello" if failure == "connection_lost" else "Par")


async def test_a_refusal_before_the_first_byte_is_an_openai_error(hop):
    c, knobs, _ = hop
    with pytest.raises(openai.APIStatusError) as info:  # Anthropic's 529, no other backend
        await c.responses.create(model=fake.MODEL, input="overloaded")
    assert info.value.status_code == 503 and info.value.code == "upstream_unavailable"
    with pytest.raises(openai.BadRequestError) as info:  # Anthropic's range is 0..1
        await c.responses.create(model=fake.MODEL, input="text", temperature=1.5)
    assert info.value.body["param"] == "temperature"
