"""`eldric chat` in a terminal against the mock worker behind a router and an edge: the
reply shows while it is still being generated, Ctrl-C stops it (every hop, down to the
worker, sees the client leave) and the session goes on."""

from __future__ import annotations

import json
import re
import time

import pexpect

from tests.client.terminal import STATS, leave, prompt, say, seen, spawn, step
from tests.conftest import metric, run_eldric, until

LOOP = "127.0.0.1"
KEY = "sk-chat"
LEFT = 'eldric_client_disconnects_total{role="%s"}'


async def test_reply_streams_and_ctrl_c_stops_it_upstream(tmp_path):
    # 200 tokens, 50 ms apart: a 10 s reply, stopped long before its end
    async with run_eldric("worker", tmp_path / "w", backend="mock", port=0, bind=LOOP,
                          mock_tokens=200, mock_token_delay=50, grace_period=500) as w, \
            run_eldric("router", tmp_path / "r", port=0, bind=LOOP,
                       workers=w["worker"], grace_period=500) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind=LOOP,
                       routers=r["router"], api_key=KEY, grace_period=500) as e:
        child = spawn(tmp_path, "--url", e["edge"], "--key", KEY)
        banner = await step(prompt, child)
        assert "model eldric-mock" in banner  # none named: the endpoint's first
        began = time.monotonic()
        child.sendline("tell me about foxes")
        await step(child.expect, "quick brown")
        assert time.monotonic() - began < 5  # seen while the reply had seconds to go
        assert not re.search(STATS, seen(child))
        child.sendintr()  # Ctrl-C
        await step(child.expect, r"\[stopped\]")
        stopped = time.monotonic()
        # the edge saw its client leave, and so did the worker: generation stopped
        await until(lambda: metric(e["edge"], LEFT % "edge"), timeout=5)
        await until(lambda: metric(w["worker"], LEFT % "worker"), timeout=10)
        assert time.monotonic() - began < 9
        after = await step(prompt, child)  # the session goes on
        assert "quick" not in after.split("[stopped]")[-1]  # no more of the reply came
        child.sendline("/model")
        await step(child.expect, "model: eldric-mock")
        assert await step(leave, child) == 0
        assert time.monotonic() - stopped < 8
    # what had come of the stopped reply is kept in the conversation
    (saved,) = (tmp_path / "state" / "eldric" / "chat").glob("*.json")
    conv = json.loads(saved.read_text())
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["messages"][1]["content"].startswith("The quick brown")
    assert len(conv["messages"][1]["content"].split()) < 200


async def test_one_shot_ctrl_c_exits_130_and_keeps_what_came(tmp_path):
    async with run_eldric("worker", tmp_path / "w", backend="mock", port=0, bind=LOOP,
                          mock_tokens=200, mock_token_delay=50, grace_period=500) as w:
        child = spawn(tmp_path, "--url", w["worker"], "--plain", "go on")
        await step(child.expect, "quick brown")
        child.sendintr()
        await step(child.expect, r"\[stopped\]")
        await step(child.expect, pexpect.EOF)
        child.close()
        assert child.exitstatus == 130
        await until(lambda: metric(w["worker"], LEFT % "worker"), timeout=10)
        # Ctrl-C at the prompt of an interactive session drops the line, nothing is sent
        child = spawn(tmp_path, "--url", w["worker"])
        await step(prompt, child)
        child.send("half a line")
        # echoed: readline has the line (a ^C racing ahead of it could land before
        # input() reads the terminal, and be the line's first character instead)
        await step(child.expect, "half a line")
        child.sendintr()
        await step(prompt, child)  # a fresh prompt
        assert "model: eldric-mock" in await step(say, child, "/model")
        assert await step(leave, child) == 0
    (saved,) = (tmp_path / "state" / "eldric" / "chat").glob("*.json")
    conv = json.loads(saved.read_text())
    assert [m["content"] for m in conv["messages"]][0] == "go on"
    assert len(conv["messages"]) == 2
