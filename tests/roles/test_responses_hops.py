"""OpenAI's Responses API through every hop, with the official openai SDK: a worker on the
mock backend (which has no /v1/responses: the worker translates), a router and an edge in
front. create, create(stream=True), the responses.stream() helper, function tools round
trip, previous_response_id chains, retrieve, delete, built-in tools refused."""

from __future__ import annotations

import contextlib

import openai
import pytest

from tests.conftest import run_eldric

MODEL = "eldric-mock"
TEXT = "The quick brown fox jumps over the lazy dog.The quick brown fox jumps over"
KEYS = ["sk-a", "sk-b"]


@contextlib.asynccontextmanager
async def cluster(tmp_path, **edge):
    """worker (mock) <- router <- edge (two API keys, and these flags): each hop's URL."""
    async with run_eldric("worker", tmp_path / "w", backend="mock", port=0,
                          bind="127.0.0.1") as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"]) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], api_key=KEYS, **edge) as e:
        yield {**w, **r, **e}


@pytest.fixture
async def hops(tmp_path):
    async with cluster(tmp_path) as urls:
        yield urls


def sdk(url: str, key: str = "sk-a") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def prompt_tokens(*contents: str) -> int:
    """What the mock counts for these messages: their words, plus one."""
    return sum(len(c.split()) for c in contents) + 1


HOPS = ["worker", "router", "edge"]


@pytest.mark.parametrize("hop", HOPS)
async def test_create_and_chain_on_each_hop(hops, hop):
    c = sdk(hops[hop])
    r1 = await c.responses.create(model=MODEL, input="hi", instructions="be brief")
    assert r1.status == "completed" and r1.output_text == TEXT and r1.id.startswith("resp_")
    assert r1.usage.input_tokens == prompt_tokens("be brief", "hi")
    assert r1.usage.total_tokens == r1.usage.input_tokens + r1.usage.output_tokens
    # the chain: r1's input and output come before the new input; instructions do not
    r2 = await c.responses.create(model=MODEL, input="more", previous_response_id=r1.id)
    assert r2.usage.input_tokens == prompt_tokens("hi", TEXT, "more")
    assert (r2.previous_response_id, r2.store) == (r1.id, True)
    r3 = await c.responses.create(model=MODEL, input="again", previous_response_id=r2.id)
    assert r3.usage.input_tokens == prompt_tokens("hi", TEXT, "more", TEXT, "again")
    got = await c.responses.retrieve(r2.id)
    assert (got.id, got.output_text, got.previous_response_id) == (r2.id, TEXT, r1.id)


@pytest.mark.parametrize("hop", HOPS)
async def test_streams_on_each_hop(hops, hop):
    c = sdk(hops[hop])
    events = [e async for e in await c.responses.create(model=MODEL, input="hi", stream=True)]
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    done = events[-1].response
    assert done.usage.output_tokens > 0
    # the streamed response is kept as it ended, and chains
    assert (await c.responses.retrieve(done.id)).output_text == TEXT
    async with c.responses.stream(model=MODEL, input="more",
                                  previous_response_id=done.id) as stream:
        final = await stream.get_final_response()
    assert final.output_text == TEXT
    assert final.usage.input_tokens == prompt_tokens("hi", TEXT, "more")


async def test_function_tools_round_trip(hops):
    c = sdk(hops["edge"])
    tools = [{"type": "function", "name": "get_weather", "strict": True,
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"], "additionalProperties": False}}]
    r = await c.responses.create(model=MODEL, tools=tools, input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C and sunny"}])
    assert r.status == "completed" and r.output_text == TEXT
    # three messages reached the backend: the user's, the assistant's call (content null,
    # which the mock counts as the word "None") and the tool's result
    assert r.usage.input_tokens == prompt_tokens("weather in Paris?", "None", "18C and sunny")
    assert r.tools[0].name == "get_weather"


async def test_length_is_incomplete(hops):
    r = await sdk(hops["edge"]).responses.create(model=MODEL, input="hi", max_output_tokens=3)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 3


@pytest.mark.parametrize("hop", HOPS)
async def test_built_in_tools_are_refused(hops, hop):
    with pytest.raises(openai.BadRequestError) as info:
        await sdk(hops[hop]).responses.create(model=MODEL, input="hi",
                                              tools=[{"type": "web_search"}])
    assert info.value.code == "unsupported_tool" and info.value.param == "tools[0].type"
    assert "web_search" in info.value.message


async def test_a_bad_body_is_a_400_naming_the_field(hops):
    with pytest.raises(openai.BadRequestError) as info:
        await sdk(hops["edge"]).responses.create(model=MODEL, input=[{"type": "nope"}])
    assert info.value.param == "input[0].type"
