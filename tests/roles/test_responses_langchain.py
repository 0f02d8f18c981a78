"""LangChain's ChatOpenAI on the Responses API (use_responses_api=True) through the edge:
in front of a router and a mock worker for text, and of a cloud worker over the fake
OpenAI-compatible provider for tool calls; invoke, stream, tools, and chaining by
previous_response_id (use_previous_response_id)."""

from __future__ import annotations

import json

import openai
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

from tests.conftest import run_cloud, run_eldric, url_of
from tests.fakes import openai_server
from tests.fakes.openai_server import KNOBS
from tests.roles.test_responses_hops import TEXT, cluster, sdk


def chat(edge: str, model: str, **kw) -> ChatOpenAI:  # type: ignore[no-untyped-def]
    return ChatOpenAI(model=model, base_url=edge + "/v1", api_key="sk-a",
                      use_responses_api=True, max_retries=0, **kw)


async def test_invoke_stream_and_chain_through_the_edge(tmp_path):
    async with cluster(tmp_path) as urls:
        llm = chat(urls["edge"], "eldric-mock", use_previous_response_id=True)
        first = await llm.ainvoke("hi")
        assert first.text == TEXT and first.response_metadata["id"].startswith("resp_")
        assert first.usage_metadata["output_tokens"] > 0
        parts = [c async for c in llm.astream("hi")]
        assert "".join(p.text for p in parts) == TEXT
        # with use_previous_response_id, LangChain sends only what follows its last reply
        again = await llm.ainvoke([HumanMessage("hi"), first, HumanMessage("more")])
        assert again.text == TEXT
        assert again.usage_metadata["input_tokens"] == len(f"hi {TEXT} more".split()) + 1
        # it did chain by id: with the first response gone, the same call is a 404
        await sdk(urls["edge"]).responses.delete(first.response_metadata["id"])
        with pytest.raises(openai.NotFoundError):
            await llm.ainvoke([HumanMessage("hi"), first, HumanMessage("more")])


async def test_tool_calls_through_the_edge(aiohttp_server, tmp_path):
    server = await aiohttp_server(openai_server.make_app())
    knobs = server.app[KNOBS]
    model = openai_server.MODELS[0]
    async with run_cloud(tmp_path / "c", f"fake:{url_of(server)}/v1") as c, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=c["cloud"], api_key=["sk-a"]) as e:
        def get_weather(city: str) -> str:
            """The weather in a city."""
            return "18C"

        llm = chat(e["edge"], model).bind_tools([get_weather])
        knobs.tool_calls = [("call_w", "get_weather", '{"city":"Paris"}')]
        for streamed in (False, True):
            if streamed:
                got = None
                async for part in llm.astream("weather in Paris?"):
                    got = part if got is None else got + part
            else:
                got = await llm.ainvoke("weather in Paris?")
            [call] = got.tool_calls
            assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"})
        knobs.tool_calls = None
        answer = await llm.ainvoke([HumanMessage("weather in Paris?"), got,
                                    ToolMessage("18C", tool_call_id=call["id"])])
        assert answer.text == " w0 w1 w2 w3 w4"
        messages = json.loads(knobs.requests[-1]["body"])["messages"]
        assert messages[-1] == {"role": "tool", "tool_call_id": call["id"], "content": "18C"}
        assert messages[-2]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'
