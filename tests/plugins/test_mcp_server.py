"""The edge's MCP client (eldric/roles/edge/plugins/mcp.py) against a real MCP server
written with the SDK (tests/fakes/mcp_server.py), over stdio: its tools listed as
OpenAI function specs, a call's text result, an isError result, a deadline, a crash
mid-call (a PluginError kind, then restarted), a server that cannot start."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from eldric.roles.edge.plugins.mcp import McpServer  # noqa: E402
from eldric.roles.edge.plugins.mcp_config import McpServerConfig  # noqa: E402
from eldric.roles.edge.plugins.process import PluginError  # noqa: E402

ROOT = str(Path(__file__).resolve().parents[2])


def _stdio(**kw):  # type: ignore[no-untyped-def]
    return McpServer(McpServerConfig(name="t", command=sys.executable,
                                     args=["-m", "tests.fakes.mcp_server"], cwd=ROOT,
                                     env={"PYTHONPATH": ROOT}, **kw))


async def test_tools_listed_and_called_over_stdio():
    s = _stdio()
    try:
        await s.start(wait_s=20)
        assert s.state == "ready", s.last_error
        names = {t["function"]["name"] for t in s.info["tools"]}
        assert {"add", "slow", "crash", "fail"} <= names
        add = next(t for t in s.info["tools"] if t["function"]["name"] == "add")
        assert add["type"] == "function"
        assert set(add["function"]["parameters"]["properties"]) == {"a", "b"}
        assert (await s.call("tool", {"name": "add", "arguments": {"a": 2, "b": 40}})) \
            == {"content": "42"}
        failed = await s.call("tool", {"name": "fail", "arguments": {}})
        assert failed["content"].startswith("error: ")
        with pytest.raises(PluginError) as info:
            await s.call("tool", {"name": "slow", "arguments": {"seconds": 5}}, timeout_ms=200)
        assert info.value.kind == "timeout"
    finally:
        await s.stop()
    assert s.state == "stopped"


async def test_a_crash_mid_call_is_a_failure_then_the_server_restarts():
    s = _stdio(deadline_ms=5000)
    try:
        await s.start(wait_s=20)
        assert s.state == "ready", s.last_error
        with pytest.raises(PluginError):
            await s.call("tool", {"name": "crash", "arguments": {}})
        for _ in range(200):  # restarted with backoff
            if s.restarts and s.state == "ready":
                break
            await asyncio.sleep(0.1)
        assert s.restarts >= 1 and s.state == "ready"
        assert (await s.call("tool", {"name": "add", "arguments": {"a": 1, "b": 1}})) \
            == {"content": "2"}
    finally:
        await s.stop()


async def test_a_server_that_cannot_start_is_down_not_an_error():
    s = McpServer(McpServerConfig(name="gone", command="/nonexistent/mcp-server"))
    try:
        await s.start(wait_s=1)
        assert s.state in ("down", "starting") and not s.running
        assert s.status()["error"]
        with pytest.raises(PluginError) as info:
            await s.call("tool", {"name": "add", "arguments": {}})
        assert info.value.kind == "down"
    finally:
        await s.stop()


async def test_tools_list_changed_refreshes_the_tools():
    s = _stdio()
    try:
        await s.start(wait_s=20)
        assert s.state == "ready", s.last_error
        assert "double" not in s.status()["tools"]
        await s.call("tool", {"name": "grow", "arguments": {}})
        for _ in range(100):
            if "double" in s.status()["tools"]:
                break
            await asyncio.sleep(0.05)
        assert "double" in s.status()["tools"]
        assert (await s.call("tool", {"name": "double", "arguments": {"x": 21}})) \
            == {"content": "42"}
    finally:
        await s.stop()


async def test_a_server_that_exits_at_once_is_down_with_a_readable_error():
    """`true` exits before answering: the status and the log say the SDK's own error
    (MCPError: Connection closed), not the anyio ExceptionGroups wrapped around it."""
    s = McpServer(McpServerConfig(name="t", command="true"))
    try:
        await s.start(wait_s=3)
        assert s.state != "ready"
        assert s.last_error and "ExceptionGroup" not in s.last_error, s.last_error
        assert s.last_error.startswith("MCPError: "), s.last_error
    finally:
        await s.stop()
async def test_images_and_resources_reach_the_model_as_text():
    s = _stdio()
    try:
        await s.start(wait_s=20)
        assert s.state == "ready", s.last_error
        text = (await s.call("tool", {"name": "picture", "arguments": {}}))["content"]
    finally:
        await s.stop()
    assert "image/png" in text  # said, not dropped: the model knows a picture came back
    assert "the notes" in text  # a text resource's text is the model's
    assert "file:///data.bin" in text
