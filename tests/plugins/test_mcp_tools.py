"""MCP servers' tools in the edge's tool loop, end to end: the openai SDK -> the edge
(mcp_servers in its config file: a real MCP server written with the SDK,
tests/fakes/mcp_server.py, over stdio and over streamable HTTP on a free port) -> router
-> a scripted backend that calls the tool. The tool runs, its result reaches the model,
the final answer returns (whole and streamed); fail_mode open tells the model, closed is
the client's 502; a server down at start leaves the edge up and says so in the status."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import openai
import pytest

pytest.importorskip("mcp")

from eldric import registry  # noqa: E402
from eldric.cli import load_config  # noqa: E402
from tests.conftest import free_port, serving  # noqa: E402
from tests.fakes import scripted  # noqa: E402
from tests.plugins.kit import KEY, router  # noqa: E402

M = "m-mcp"
ADMIN = {"Authorization": "Bearer sk-admin-mcp"}
ROOT = str(Path(__file__).resolve().parents[2])
ASK = [{"role": "user", "content": "What is 2+40?"}]
ADD = ("call_1", "add", json.dumps({"a": 2, "b": 40}))
STDIO = {"name": "calc", "command": sys.executable, "args": ["-m", "tests.fakes.mcp_server"],
         "cwd": ROOT, "env": {"PYTHONPATH": ROOT}, "offer": "always"}


async def _edge(tmp_path, router_url, servers):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "edge.json"
    cfg.write_text(json.dumps({"edge": {"mcp_servers": servers}}))
    loaded = load_config(registry.resolve("edge"), {
        "no_tls": True, "http_port": 0, "bind": "127.0.0.1", "routers": router_url,
        "api_key": KEY, "admin_key": "sk-admin-mcp", "data_dir": str(tmp_path / "e"),
        "plugins_dir": str(tmp_path / "noplugins")}, {}, str(cfg))
    return serving(registry.resolve("edge"), loaded)


async def _ready(url: str, name: str) -> dict:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            async with s.get(url + "/api/v1/plugins", headers=ADMIN) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
            found = {m["id"]: m for m in body.get("mcp_servers", [])}
            if found.get(name, {}).get("state") == "ready":
                return found[name]
            await asyncio.sleep(0.1)
    raise AssertionError(f"MCP server {name} never ready: {body}")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_an_mcp_tool_round_trip_over_stdio(tmp_path, aiohttp_server, stream):
    script = await scripted.serve(aiohttp_server, [M])
    script.on(model=M, call=0, tool_calls=[ADD]).on(model=M, call=1, text="It is 42.")
    async with router(tmp_path, script.url) as r, await _edge(tmp_path, r["router"],
                                                              [STDIO]) as e:
        status = await _ready(e["edge"], "calc")
        assert "add" in status["tools"]
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        if stream:
            text = ""
            async for chunk in await client.chat.completions.create(
                    model=M, messages=ASK, stream=True):
                if chunk.choices:
                    assert not chunk.choices[0].delta.tool_calls
                    text += chunk.choices[0].delta.content or ""
        else:
            reply = await client.chat.completions.create(model=M, messages=ASK)
            text = reply.choices[0].message.content
            assert not reply.choices[0].message.tool_calls
        await client.close()
    assert text.strip() == "It is 42."
    first, second = script.calls[0], script.calls[1]
    assert "add" in [t["function"]["name"] for t in first.body["tools"]]
    tool_msg = second.body["messages"][-1]
    assert tool_msg == {"role": "tool", "tool_call_id": "call_1", "content": "42"}


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_a_server_crashing_mid_call(tmp_path, aiohttp_server, mode):
    script = await scripted.serve(aiohttp_server, [M])
    script.on(model=M, call=0, tool_calls=[("call_1", "crash", "{}")])
    script.on(model=M, call=1, text="The tool failed.")
    server = {**STDIO, "fail_mode": mode, "deadline_ms": 5000}
    async with router(tmp_path, script.url) as r, await _edge(tmp_path, r["router"],
                                                              [server]) as e:
        await _ready(e["edge"], "calc")
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        try:
            if mode == "open":
                reply = await client.chat.completions.create(model=M, messages=ASK)
                assert reply.choices[0].message.content == "The tool failed."
                told = script.calls[1].body["messages"][-1]["content"]
                assert told.startswith("error: ")
            else:
                with pytest.raises(openai.APIStatusError) as info:
                    await client.chat.completions.create(model=M, messages=ASK)
                assert info.value.status_code == 502
                assert info.value.body["code"] == "tool_failed"
                assert len(script.calls) == 1
        finally:
            await client.close()


async def test_streamable_http_and_a_server_down_at_start(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [M])
    script.on(model=M, call=0, tool_calls=[ADD]).on(model=M, call=1, text="It is 42.")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    down = {"name": "web", "transport": "http", "url": url, "offer": "always"}
    async with router(tmp_path, script.url) as r, await _edge(tmp_path, r["router"],
                                                              [down]) as e:
        async with aiohttp.ClientSession() as s:  # the edge is up; the server is down
            await asyncio.sleep(0.5)
            async with s.get(e["edge"] + "/api/v1/plugins", headers=ADMIN) as resp:
                web_status = (await resp.json())["mcp_servers"][0]
        assert web_status["state"] != "ready" and web_status["tools"] == []
        child = subprocess.Popen([sys.executable, "-m", "tests.fakes.mcp_server", "http",
                                  str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            status = await _ready(e["edge"], "web")  # restarted with backoff
            assert status["restarts"] >= 1
            client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY,
                                        max_retries=0)
            reply = await client.chat.completions.create(model=M, messages=ASK)
            await client.close()
            assert reply.choices[0].message.content == "It is 42."
            assert script.calls[1].body["messages"][-1]["content"] == "42"
        finally:
            child.terminate()
            child.wait(10)


async def test_offer_request_tools_only_when_the_header_names_the_server(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [M])
    script.on(model=M, text="plain")
    server = {**STDIO, "offer": "request"}
    async with router(tmp_path, script.url) as r, await _edge(tmp_path, r["router"],
                                                              [server]) as e:
        await _ready(e["edge"], "calc")
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        await client.chat.completions.create(model=M, messages=ASK)
        await client.chat.completions.create(model=M, messages=ASK,
                                             extra_headers={"X-Eldric-Tools": "calc"})
        await client.close()
    assert "tools" not in script.calls[0].body
    assert "add" in [t["function"]["name"] for t in script.calls[1].body["tools"]]
