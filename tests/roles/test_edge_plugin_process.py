"""process.PluginProcess against real children that break the protocol in each way it
can be broken: every one a failure of that call, counted, the edge's side never stuck."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from eldric.roles.edge.plugins.process import (PluginBadReply, PluginDown, PluginError,
                                               PluginProcess, PluginTimeout)
from tests.conftest import until

RAW = """
import json, sys, os
# speaks the wire by hand: what eldric.plugin would never send
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    m, i = msg["method"], msg["id"]
    def out(obj):
        sys.stdout.write(json.dumps(obj) + "\\n"); sys.stdout.flush()
    if m == "initialize":
        out({"jsonrpc": "2.0", "id": i, "result": {"tools": [], "models": []}})
    elif msg["params"].get("body", {}).get("how") == "shape":
        out({"jsonrpc": "2.0", "id": i, "result": {"body": "not an object"}})
    elif msg["params"].get("body", {}).get("how") == "stranger":
        out({"jsonrpc": "2.0", "id": i + 1000, "result": {"body": {}}})
    elif msg["params"].get("body", {}).get("how") == "list":
        out([1, 2])
    elif msg["params"].get("body", {}).get("how") == "error":
        out({"jsonrpc": "2.0", "id": i, "error": "no"})
    else:
        out({"jsonrpc": "2.0", "id": i, "result": {"body": msg["params"]["body"]}})
"""


def _child(tmp_path, code: str) -> PluginProcess:
    (tmp_path / "main.py").write_text(textwrap.dedent(code))
    return PluginProcess("t", tmp_path, timeout_ms=500, max_failures=100)


async def test_every_kind_of_bad_reply_fails_that_call_only(tmp_path):
    proc = _child(tmp_path, RAW)
    await proc.start()
    try:
        for how in ("shape", "stranger", "list", "error"):
            with pytest.raises(PluginError):
                await proc.call("inlet", {"body": {"how": how}})
            # and the next good call is answered: nothing left stuck
            assert await proc.call("inlet", {"body": {"n": 1}}) == {"body": {"n": 1}}
        s = proc.stats
        assert s.failures == 4 and s.bad_replies >= 3 and s.calls == 8
        assert proc.state == "running" and s.restarts == 0
    finally:
        await proc.stop()
    assert proc.state == "stopped"
    with pytest.raises(PluginDown):
        await proc.call("inlet", {"body": {}})


async def test_a_timed_out_call_is_cancelled_in_the_child(tmp_path):
    proc = _child(tmp_path, """
        import asyncio
        from eldric import plugin

        @plugin.tool(name="wait")
        async def wait(seconds):
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                open("cancelled", "w").close()
                raise
            return "done"

        plugin.run()
        """)
    await proc.start()
    try:
        with pytest.raises(PluginTimeout):
            await proc.call("tool", {"name": "wait", "arguments": {"seconds": 30}}, 200)
        await until(lambda: (tmp_path / "cancelled").exists())
        # the child is still there and answers: a deadline is not a crash
        assert await proc.call("tool", {"name": "wait", "arguments": {"seconds": 0}}) == \
            {"content": "done"}
        assert proc.stats.timeouts == 1
    finally:
        await proc.stop()


async def test_n_failures_in_a_row_restart_the_child(tmp_path):
    proc = _child(tmp_path, RAW)
    proc.max_failures = 3
    proc.backoff_min = 50
    await proc.start()
    try:
        pid = proc._proc.pid if proc._proc else None
        for _ in range(3):
            with pytest.raises(PluginBadReply):
                await proc.call("inlet", {"body": {"how": "shape"}})
        await until(lambda: proc.state == "running" and proc._proc is not None
                    and proc._proc.pid != pid, timeout=5)
        assert proc.stats.restarts == 1 and proc.stats.consecutive == 0
    finally:
        await proc.stop()


async def test_a_lazy_child_starts_at_its_first_call(tmp_path):
    proc = _child(tmp_path, RAW)
    proc.arm()
    assert proc.state == "idle" and proc._proc is None
    try:
        assert await proc.call("inlet", {"body": {"a": 1}}) == {"body": {"a": 1}}
        assert proc.state == "running"
    finally:
        await proc.stop()


async def test_pipe_chunks_reach_the_call_they_belong_to(tmp_path):
    proc = _child(tmp_path, """
        from eldric import plugin

        @plugin.pipe(id="count", name="Counter")
        def count(body, user):
            for i in range(int(body["n"])):
                yield f"{i} "

        plugin.run()
        """)
    await proc.start()
    try:
        assert proc.info["models"] == [{"id": "count", "name": "Counter"}]
        got: dict[int, list[str]] = {3: [], 5: []}
        a, b = await asyncio.gather(*(
            proc.call("pipe", {"model": "count", "body": {"n": n}, "user": {"name": "x"}},
                      notify=lambda p, n=n: got[n].append(p["delta"])) for n in (3, 5)))
        assert a["content"] == "0 1 2 " and "".join(got[3]) == a["content"]
        assert b["content"] == "0 1 2 3 4 " and "".join(got[5]) == b["content"]
    finally:
        await proc.stop()


async def test_a_slow_start_is_not_a_failed_one_and_calls_do_not_wait_for_it(tmp_path):
    """Start-up (imports, a model loaded) may take longer than a call's deadline: it has
    its own (start_timeout_ms), while a call made meanwhile fails after its own."""
    (tmp_path / "main.py").write_text(textwrap.dedent("""
        import time
        time.sleep(1.0)
        from eldric import plugin

        @plugin.inlet
        def inlet(body, user):
            return body

        plugin.run()
        """))
    proc = PluginProcess("slow", tmp_path, timeout_ms=200)
    proc.arm()
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(PluginDown):
            await proc.call("inlet", {"body": {}})
        assert loop.time() - t0 < 0.8
        await until(lambda: proc.state == "running", timeout=10)
        assert await proc.call("inlet", {"body": {"a": 1}}) == {"body": {"a": 1}}
        assert proc.stats.restarts == 0
    finally:
        await proc.stop()
