"""A plugin tool call traced at the edge: an `eldric.plugin.tool` span (plugin id,
gen_ai.tool.name, outcome) under the edge's request span, and the edge's attempts to the
router one per round of the tool loop."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import url_of
from tests.fakes import otlp, scripted
from tests.plugins.kit import KEY, edge, plugins_dir, router

pytest.importorskip("opentelemetry.sdk")

M = "m-tools"
ASK = [{"role": "user", "content": "What is (17+4)*3.5?"}]
CALC = ("call_1", "calculate", json.dumps({"expression": "(17+4)*3.5"}))
SERVER, ERROR = 2, 2


async def test_plugin_tool_call_span(tmp_path, aiohttp_server):
    collector = await aiohttp_server(otlp.make_app())
    script = await scripted.serve(aiohttp_server, [M])
    script.on(model=M, call=0, tool_calls=[CALC])
    script.on(model=M, call=1, text="It is 73.5.")
    plugins = plugins_dir(tmp_path, "calculator")
    endpoint = url_of(collector)
    async with router(tmp_path, script.url) as r, \
            edge(tmp_path, r["router"], plugins, otel_endpoint=endpoint) as e:
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        reply = await client.chat.completions.create(model=M, messages=ASK)
        await client.close()
    assert reply.choices[0].message.content.strip() == "It is 73.5."
    spans = collector.app[otlp.RECEIVED].named("eldric-edge")
    (srv,) = [s for s in spans if s.kind == SERVER
              and s.attrs.get("url.path") == "/v1/chat/completions"]
    (tool,) = [s for s in spans if s.name == "eldric.plugin.tool"]
    assert tool.parent_id == srv.span_id and tool.trace_id == srv.trace_id
    assert tool.attrs["eldric.plugin.id"] == "calculator"
    assert tool.attrs["gen_ai.tool.name"] == "calculate"
    assert tool.attrs["eldric.outcome"] == "ok" and tool.status != ERROR


async def test_filter_inlet_outlet_spans(tmp_path, aiohttp_server):
    collector = await aiohttp_server(otlp.make_app())
    script = await scripted.serve(aiohttp_server, [M])
    script.on(model=M, text="Write to bob@example.com.")
    plugins = plugins_dir(tmp_path, "pii-redact")
    async with router(tmp_path, script.url) as r, \
            edge(tmp_path, r["router"], plugins, otel_endpoint=url_of(collector)) as e:
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        reply = await client.chat.completions.create(
            model=M, messages=[{"role": "user", "content": "mail alice@example.com"}])
        await client.close()
    assert "bob@example.com" not in reply.choices[0].message.content  # the outlet ran
    spans = collector.app[otlp.RECEIVED].named("eldric-edge")
    (srv,) = [s for s in spans if s.kind == SERVER
              and s.attrs.get("url.path") == "/v1/chat/completions"]
    for hook in ("inlet", "outlet"):
        (s,) = [s for s in spans if s.name == f"eldric.plugin.{hook}"]
        assert s.parent_id == srv.span_id
        assert s.attrs["eldric.plugin.id"] == "pii-redact"
        assert s.attrs["eldric.outcome"] == "ok" and s.status != ERROR
