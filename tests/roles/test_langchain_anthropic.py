"""LangChain's ChatAnthropic (langchain-anthropic) end to end through the edge: an edge
with a key, a router, and a worker translating /v1/messages for its backend (the mock;
the fake vLLM-shaped server for a tool call)."""

from __future__ import annotations

import contextlib

import langchain_anthropic

from tests.conftest import run_eldric, url_of
from tests.fakes import openai_server

KEY = "sk-lc-claude"


@contextlib.asynccontextmanager
async def edge_in_front(tmp_path, **worker_flags):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          **worker_flags) as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"]) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], api_key=KEY) as e:
        yield e["edge"]


async def test_invoke_and_stream(tmp_path):
    async with edge_in_front(tmp_path, backend="mock", mock_tokens=5) as edge:
        llm = langchain_anthropic.ChatAnthropic(model="eldric-mock", base_url=edge,
                                                api_key=KEY, max_tokens=64, max_retries=0)
        answer = await llm.ainvoke([("system", "Be brief."), ("human", "Hello")])
        assert answer.content and answer.response_metadata["stop_reason"] == "end_turn"
        assert answer.usage_metadata["output_tokens"] == 5
        pieces = [chunk async for chunk in llm.astream("Hello")]
        text = "".join(c.content if isinstance(c.content, str) else
                       "".join(p.get("text", "") for p in c.content) for c in pieces)
        assert text == answer.content  # the mock's tokens are the same every time


async def test_a_tool_call(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[openai_server.KNOBS]
    knobs.tool_calls = [("call_7", "get_weather", '{"location": "Lima"}')]

    def get_weather(location: str) -> str:
        """The weather at a place."""
        return "sunny"

    async with edge_in_front(tmp_path, backend="tgi",
                             backend_url=url_of(fake_openai_server)) as edge:
        llm = langchain_anthropic.ChatAnthropic(model=openai_server.MODELS[0], base_url=edge,
                                                api_key=KEY, max_tokens=64, max_retries=0)
        reply = await llm.bind_tools([get_weather]).ainvoke("Weather in Lima?")
    assert reply.tool_calls == [{"name": "get_weather", "args": {"location": "Lima"},
                                 "id": "call_7", "type": "tool_call"}]
