"""The interactive session's /commands, each seen in the next request: /models (pick by
number), /model, /system, /swarm (the X-Eldric-Swarm header; the router refusing an
unknown strategy is one line), /help, /exit and Ctrl-D."""

from __future__ import annotations

import pexpect

from tests.client.terminal import leave, prompt, say, spawn, step
from tests.conftest import run_eldric
from tests.fakes import scripted


async def test_models_model_and_system(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b", "m-c"])
    child = spawn(tmp_path, "--url", script.url)
    assert "model m-a" in await step(prompt, child)
    child.sendline("/models")
    await step(child.expect, r"pick 1-3 \(Enter keeps m-a\): ")
    listed = child.before
    assert all(f"{i}  m-{c}" in listed for i, c in ((1, "a"), (2, "b"), (3, "c")))
    assert "model: m-c" in await step(say, child, "3")
    child.sendline("/models")
    await step(child.expect, "pick")
    assert "error: '7' is not a number from 1 to 3" in await step(say, child, "7")
    assert "system: answer in French" in await step(say, child, "/system answer in French")
    await step(say, child, "bonjour")
    call = script.calls[0]
    assert call.model == "m-c" and call.system == "answer in French"
    await step(say, child, "/model m-b")
    assert "system: (none)" in await step(say, child, "/system off")
    await step(say, child, "again")
    assert script.calls[1].model == "m-b" and script.calls[1].system == ""
    child.sendline("/help")
    helped = await step(prompt, child)
    assert all(f"/{c}" in helped for c in ("models", "model", "system", "new", "history",
                                            "save", "swarm", "exit"))
    child.sendeof()  # Ctrl-D at the prompt leaves too
    await step(child.expect, pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


async def test_swarm_header_and_the_routers_refusal(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    # straight to the backend: the header is what /swarm sends
    child = spawn(tmp_path, "--url", script.url)
    await step(prompt, child)
    assert "swarm: vote" in await step(say, child, "/swarm vote")
    await step(say, child, "hi")
    assert script.calls[0].headers.get("X-Eldric-Swarm") == "vote"
    await step(say, child, "/swarm off")
    await step(say, child, "hi")
    assert "X-Eldric-Swarm" not in script.calls[1].headers
    assert await step(leave, child) == 0
    # through a router: a strategy it does not know is its 400, one line, session open
    async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                          workers=script.url) as r:
        child = spawn(tmp_path, "--url", r["router"], "--swarm", "nonsense")
        await step(prompt, child)
        assert "error: HTTP 400 invalid_swarm: " in await step(say, child, "hi")
        await step(say, child, "/swarm off")
        assert "m-a answer" in await step(say, child, "hi")
        assert await step(leave, child) == 0


async def test_a_swarm_through_the_router(aiohttp_server, tmp_path):
    import json

    script = await scripted.serve(aiohttp_server, ["m-a", "m-b"])
    duo = {"duo": {"strategy": "best_of_n", "members": [{"model": "m-a"}, {"model": "m-b"}]}}
    async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                          workers=script.url, ensembles=json.dumps(duo)) as r:
        child = spawn(tmp_path, "--url", r["router"], "-m", "m-a")
        await step(prompt, child)
        await step(say, child, "/swarm duo")
        child.sendline("which is best?")
        shown = await step(prompt, child)
        assert "answer" in shown and "error" not in shown
        assert {"m-a", "m-b"} <= set(script.order())  # both members were asked
        assert await step(leave, child) == 0
