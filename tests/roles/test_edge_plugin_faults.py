"""Plugins that crash, hang, lie or never come up: the edge keeps serving, each filter's
fail_mode is followed (closed: 502 plugin_failed naming it, never a hang; open: served
unfiltered and counted), the status API shows it, the child is restarted."""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import openai
import pytest

from tests.conftest import until
from tests.fakes import scripted
from tests.roles.plugin_kit import ADMIN, MODEL, chat, edge, enable, sdk, status, write_plugin

HEAD = """
import os, sys, time
from eldric import plugin
"""
BROKEN = {
    # dies in the middle of every call
    "crashes": HEAD + """
@plugin.inlet
def inlet(body, user):
    os._exit(7)
plugin.run()
""",
    # never answers
    "sleeps": HEAD + """
@plugin.inlet
def inlet(body, user):
    time.sleep(3600)
plugin.run()
""",
    # writes a line that is not JSON-RPC where its reply should be, then the reply
    "garbage": HEAD + """
@plugin.inlet
def inlet(body, user):
    os.write(1, b"Traceback? no: garbage\\n")
    return body
plugin.run()
""",
    # exits before it ever answers initialize
    "exits": HEAD + """
sys.exit(3)
""",
}


@pytest.mark.parametrize("mode", ["closed", "open"])
@pytest.mark.parametrize("kind", list(BROKEN))
async def test_a_broken_filter_follows_its_fail_mode(tmp_path, aiohttp_server, kind, mode):
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(text="fine")
    plugins = tmp_path / "plugins"
    write_plugin(plugins, kind, BROKEN[kind], fail_mode=mode, timeout_ms=300)
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        # up first (but the one that never comes up): calls made while a child starts
        # fail fast as "down", so on a busy host all four could, and a sleeping child
        # would then never miss a deadline (no timeouts, no restart to wait for)
        await enable(s, url, kind, running=kind != "exits")
        client = sdk(url)
        for _ in range(4):
            t0 = time.monotonic()
            if mode == "closed":
                with pytest.raises(openai.APIStatusError) as e:
                    await chat(client, "hi")
                assert e.value.status_code == 502
                assert e.value.body["code"] == "plugin_failed" and kind in e.value.body["message"]
            else:
                assert (await chat(client, "hi")).choices[0].message.content == "fine"
            assert time.monotonic() - t0 < 3.0  # bounded by timeout_ms, never a hang
        st = await status(s, url, kind)
        assert st["failures"] >= 1 and st["last_error"]
        if mode == "open":
            assert st["skipped"] >= 4
        # restarted: after the crash, the exit, or the failures in a row
        st = await until(lambda: _restarted(s, url, kind), timeout=10)
        if kind == "sleeps":
            assert st["timeouts"] >= 3
        if kind == "garbage":
            assert st["bad_replies"] >= 1
        # the edge serves on: with the plugin disabled, as before
        async with s.post(f"{url}/api/v1/plugins/{kind}/disable", headers=ADMIN) as r:
            assert r.status == 200 and (await r.json())["state"] == "stopped"
        assert (await chat(client, "hi")).choices[0].message.content == "fine"
        await client.close()


async def _restarted(s, url, pid):  # type: ignore[no-untyped-def]
    st = await status(s, url, pid)
    return st if st["restarts"] >= 1 else None


# a stream hook that upper-cases, and hangs on its third event (the child stuck)
MIDWAY = HEAD + """
n = 0
@plugin.stream
def stream(event, user):
    global n
    n += 1
    if n == 3:
        time.sleep(3600)
    for c in event["choices"]:
        if (c.get("delta") or {}).get("content"):
            c["delta"]["content"] = c["delta"]["content"].upper()
    return event
plugin.run()
"""


async def test_a_stream_filter_failing_closed_ends_the_stream_with_an_error_event(
        tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(text="one two three four five", delay=0.02)
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "midway", MIDWAY, timeout_ms=300)
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "midway")
        client = sdk(url)
        got = []
        with pytest.raises(openai.APIError) as e:
            async for c in await chat(client, "hi", stream=True):
                got.extend(ch.delta.content or "" for ch in c.choices)
        assert "plugin midway failed" in str(e.value.message)
        assert got and "".join(got).lower() != " one two three four five"
        await until(lambda: script.calls[-1].outcome != "running")  # the upstream let go
        await client.close()


async def test_a_stream_filter_failing_open_lets_the_events_pass(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(text="one two three four five")
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "midway", MIDWAY, timeout_ms=300, fail_mode="open")
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "midway")
        client = sdk(url)
        t0 = time.monotonic()
        text = "".join([ch.delta.content or "" async for c in await chat(client, "hi", stream=True)
                        for ch in c.choices])
        assert time.monotonic() - t0 < 5
        # the first two events filtered, the rest as they came (the child hangs, then is
        # restarted: every event still arrives, in order)
        assert text.lower() == "one two three four five" and text != text.lower()
        st = await status(s, url, "midway")
        assert st["skipped"] >= 1 and st["timeouts"] >= 1
        await client.close()


async def test_children_stop_with_the_edge_and_on_disable(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [MODEL])
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "pidfile", HEAD + """
open("pid", "w").write(str(os.getpid()))
@plugin.inlet
def inlet(body, user):
    return body
plugin.run()
""")
    pidfile = plugins / "pidfile" / "pid"
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "pidfile")
        first = int(pidfile.read_text())
        async with s.post(url + "/api/v1/plugins/pidfile/disable", headers=ADMIN) as r:
            assert r.status == 200
        await until(lambda: not _alive(first))
        await enable(s, url, "pidfile")  # enabled state persisted: next edge starts it
        second = int(pidfile.read_text())
        assert second != first and _alive(second)
    await until(lambda: not _alive(second))
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        await until(lambda: _running(s, url), timeout=10)
        assert int(pidfile.read_text()) not in (first, second)


async def _running(s, url):  # type: ignore[no-untyped-def]
    return (await status(s, url, "pidfile"))["state"] == "running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone as far as anyone can tell; reaped by the edge's wait()
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_the_edge_comes_up_with_a_bad_manifest_and_says_why(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(text="fine")
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "bad", "", type="gadget")  # no such type
    (plugins / "notjson").mkdir()
    (plugins / "notjson" / "manifest.json").write_text("{")
    write_plugin(plugins, "badschema", "", valves={"type": "object", "properties": 3})
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        for pid, says in (("bad", "type"), ("notjson", "not JSON"), ("badschema", "valves")):
            st = await status(s, url, pid)
            assert says in st["error"] and st["state"] == "stopped"
            async with s.post(f"{url}/api/v1/plugins/{pid}/enable", headers=ADMIN) as r:
                assert r.status == 409 and (await r.json())["error"]["code"] == "plugin_invalid"
        client = sdk(url)
        assert (await chat(client, "hi")).choices[0].message.content == "fine"
        await client.close()
        await asyncio.sleep(0)


async def test_a_plugin_flooding_stdout_with_garbage_is_recycled(tmp_path, aiohttp_server):
    """Lines no call owns, without end: after max_failures of them the child is killed
    and restarted with backoff, rather than filling the edge's log for ever."""
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(text="fine")
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "flood", HEAD + """
import threading
def flood():
    time.sleep(0.3)  # after initialize's reply
    while True:
        os.write(1, b"garbage " * 100 + b"\\n")
threading.Thread(target=flood, daemon=True).start()
@plugin.inlet
def inlet(body, user):
    return body
plugin.run()
""", fail_mode="open")
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "flood", running=False)
        st = await until(lambda: _restarted(s, url, "flood"), timeout=10)
        assert st["bad_replies"] >= 3
        client = sdk(url)
        assert (await chat(client, "hi")).choices[0].message.content == "fine"
        await client.close()
