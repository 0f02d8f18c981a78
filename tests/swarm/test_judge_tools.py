"""A request with tools (and a tool_choice that forces a call): the judge's own call
(best_of_n's pick, vote's grouping) must answer JSON, so it is told tool_choice none, as
critique's and debate's text-only calls are; with the client's "required" it could only
call a tool, and the judge always fell back to the rule."""

from __future__ import annotations

import pytest

from tests.fakes import scripted
from tests.swarm.flows import ask, router

MODELS = ["m-a", "m-b", "m-c"]
TOOLS = [{"type": "function", "function": {
    "name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
LONG = "the answer is a rather long sentence of free text, more than eight words: {}"


@pytest.mark.parametrize("strategy,verdict", [
    ("best_of_n", '{"index": 1, "reason": "r"}'),
    ("vote", '{"groups": [[0, 2], [1]]}'),
])
async def test_the_judge_is_told_no_tools(aiohttp_server, tmp_path, strategy, verdict):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(contains="Candidates:", text=verdict)
    for i, m in enumerate(MODELS):
        script.on(model=m, text=LONG.format(i))
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/" + strategy, tools=TOOLS,
                                    tool_choice="required")
    assert status == 200, body
    judged = [c for c in script.calls if "Candidates:" in c.prompt]
    assert [c.body.get("tool_choice") for c in judged] == ["none"]
    members = [c for c in script.calls if "Candidates:" not in c.prompt]
    assert {c.body.get("tool_choice") for c in members} == {"required"}  # unchanged
