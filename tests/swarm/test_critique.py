"""swarm/critique through a real router in front of scripted backends: A answers, the
critics critique, A revises, for `rounds` rounds, with the prompts each call gets; the
last revision streamed as generated; failing authors, critics and revisions."""

from __future__ import annotations

import json

import pytest

from eldric.roles.router.swarm.strategies.critique import CRITIC_SYSTEM
from tests.fakes import scripted
from tests.swarm.flows import Q, ask, router, stream

FIRST, REV1, FINAL = ("Paris is in France.", "Paris is the capital of France.",
                      "Paris is the capital of France, on the Seine.")
CRIT1, CRIT2 = "It does not say Paris is the capital.", "Name the river too."


def _swarm(members=("m-a", "m-b"), **bounds):  # type: ignore[no-untyped-def]
    return {"members": list(members), **bounds}


async def _script(aiohttp_server, models=("m-a", "m-b")):  # type: ignore[no-untyped-def]
    """A (m-a) answers, revises once, revises again; B (m-b) critiques twice."""
    script = await scripted.serve(aiohttp_server, list(models))
    script.on(model="m-a", call=0, text=FIRST)
    script.on(model="m-a", call=1, text=REV1)
    script.on(model="m-a", call=2, text=FINAL, delay=0.05)
    script.on(model="m-b", contains=FIRST, text=CRIT1)
    script.on(model="m-b", contains=REV1, text=CRIT2)
    return script


async def test_a_answers_b_critiques_a_revises_for_the_rounds(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server)
    async with router(tmp_path, script.url) as urls:
        status, headers, body = await ask(urls["router"], "swarm/critique",
                                          swarm=_swarm(rounds=2))
    assert status == 200, body
    assert headers["X-Eldric-Swarm"] == "critique"
    assert script.order() == ["m-a", "m-b", "m-a", "m-b", "m-a"]
    for before, after in zip(script.calls, script.calls[1:]):
        assert after.started >= before.ended  # one after the other, each on the last
    a0, b0, a1, b1, a2 = script.calls
    assert a0.messages == Q
    # the critic sees the question and the answer, and is told to critique, not rewrite
    assert b0.system == CRITIC_SYSTEM
    assert "What is the capital of France?" in b0.prompt and FIRST in b0.prompt
    # A revises in its own conversation: its answer, then the critique
    assert a1.messages[:-2] == Q and a1.messages[-2] == {"role": "assistant", "content": FIRST}
    assert CRIT1 in a1.messages[-1]["content"] and a1.messages[-1]["role"] == "user"
    assert REV1 in b1.prompt and FIRST not in b1.prompt  # round 2 critiques revision 1
    assert a2.messages[-2]["content"] == REV1 and CRIT2 in a2.messages[-1]["content"]
    assert body["choices"][0]["message"]["content"] == FINAL
    rec = body["eldric"]
    assert [(c["stage"], c["model"]) for c in rec["members"]] == [
        ("answer", "m-a"), ("critique 1", "m-b"), ("revision 1", "m-a"),
        ("critique 2", "m-b"), ("revision 2", "m-a")]
    assert rec["answer"]["by"] == "generated" and rec["answer"]["stage"] == "revision 2"
    assert body["usage"]["completion_tokens"] == sum(
        c["usage"]["completion_tokens"] for c in rec["members"])


async def test_the_last_revision_is_streamed_as_it_is_written(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server)
    async with router(tmp_path, script.url) as urls:
        got = await stream(urls["router"], "swarm/critique", swarm=_swarm(rounds=2))
    assert got.status == 200
    assert got.content == FINAL
    pieces = [d for d in got.data if isinstance(d, dict) and d.get("choices")
              and d["choices"][0]["delta"].get("content")]
    assert len(pieces) == len(FINAL.split())  # token by token, as A wrote it
    assert got.times[-1] - got.times[0] >= 0.2  # not one burst of a finished text
    [last] = script.asked("m-a")[2:]
    assert last.body["stream"] is True
    stages = [c.get("stage") for c in got.comments if c.get("type") == "member_done"]
    assert stages == ["answer", "critique 1", "revision 1", "critique 2"]
    assert got.last["eldric"]["answer"]["stage"] == "revision 2"


async def test_every_critic_critiques_in_parallel_and_a_sees_them_all(aiohttp_server,
                                                                      tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b", "m-c"])
    script.on(model="m-a", call=0, text=FIRST)
    script.on(model="m-a", call=1, text=REV1)
    script.on(model="m-b", text=CRIT1, hold=0.2)
    script.on(model="m-c", text=CRIT2, hold=0.2)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/critique",
                                    swarm=_swarm(["m-a", "m-b", "m-c"], rounds=1))
    assert status == 200, body
    b, c = script.asked("m-b")[0], script.asked("m-c")[0]
    assert max(b.started, c.started) < min(b.ended, c.ended)
    [revision] = script.asked("m-a")[1:]
    note = revision.messages[-1]["content"]
    assert f"[0]\n{CRIT1}" in note and f"[1]\n{CRIT2}" in note and "2 reviewers" in note
    assert body["choices"][0]["message"]["content"] == REV1


async def test_an_author_that_fails_is_replaced_by_the_next_member(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b", "m-c"])
    script.on(model="m-a", status=500, message="LEAKED a is down")
    script.on(model="m-b", call=0, text=FIRST)
    script.on(model="m-b", call=1, text=REV1)
    script.on(model="m-c", text=CRIT1)
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        status, _, body = await ask(urls["router"], "swarm/critique",
                                    swarm=_swarm(["m-a", "m-b", "m-c"], rounds=1))
    assert status == 200, body
    assert script.order() == ["m-a", "m-b", "m-c", "m-b"]
    assert body["choices"][0]["message"]["content"] == REV1
    rec = body["eldric"]["members"]
    assert (rec[0]["model"], rec[0]["outcome"]) == ("m-a", "error")
    assert "LEAKED" not in json.dumps(body["choices"]) and "LEAKED" not in \
        json.dumps([c.messages for c in script.calls])


async def test_with_no_critique_the_answer_so_far_is_returned(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b"])
    script.on(model="m-a", call=0, text=FIRST)
    script.on(model="m-b", hang=True)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/critique",
                                    swarm=_swarm(rounds=2, round_timeout_ms=300))
    assert status == 200, body
    assert script.order() == ["m-a", "m-b"]
    await script.wait(lambda sc: sc.asked("m-b")[0].left, timeout=1)  # cancelled
    assert body["choices"][0]["message"]["content"] == FIRST
    answer = body["eldric"]["answer"]
    assert answer["by"] == "chosen" and "no critique" in answer["reason"]
    assert [c["outcome"] for c in body["eldric"]["members"]] == ["ok", "timeout"]


async def test_a_failed_revision_keeps_the_last_good_answer(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server)
    script.rules.insert(0, scripted.Rule("m-a", None, 1, scripted.Reply(status=500)))
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        status, _, body = await ask(urls["router"], "swarm/critique", swarm=_swarm(rounds=2))
    assert status == 200, body
    assert script.order() == ["m-a", "m-b", "m-a"]  # no round 2 after the failure
    assert body["choices"][0]["message"]["content"] == FIRST
    assert "revision 1 failed" in body["eldric"]["answer"]["reason"]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_last_revision_failing_before_its_first_token_falls_back(
        aiohttp_server, tmp_path, streamed):
    script = await _script(aiohttp_server)
    script.rules.insert(0, scripted.Rule("m-a", None, 2, scripted.Reply(
        status=500, message="LEAKED revision error")))
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        if streamed:
            got = await stream(urls["router"], "swarm/critique", swarm=_swarm(rounds=2))
            text, rec = got.content, got.last["eldric"]
        else:
            status, _, body = await ask(urls["router"], "swarm/critique",
                                        swarm=_swarm(rounds=2))
            assert status == 200, body
            text, rec = body["choices"][0]["message"]["content"], body["eldric"]
    assert text == REV1  # revision 1: the last that came
    assert rec["answer"]["by"] == "chosen" and "revision 2 failed" in rec["answer"]["reason"]
    assert (rec["members"][-1]["stage"], rec["members"][-1]["outcome"]) == \
        ("revision 2", "error")
    assert "LEAKED" not in text


async def test_on_member_error_fail_fails_the_swarm_when_a_critic_fails(aiohttp_server,
                                                                      tmp_path):
    script = await _script(aiohttp_server)
    script.rules.insert(0, scripted.Rule("m-b", None, None, scripted.Reply(status=500)))
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        status, headers, body = await ask(urls["router"], "swarm/critique",
                                          swarm=_swarm(on_member_error="fail"))
    assert status == 503, body
    assert body["error"]["code"] == "swarm_failed" and "m-b" in body["error"]["message"]
    assert headers["X-Eldric-Swarm"] == "critique"


async def test_tool_calls_of_the_author_come_back_unchanged_uncritiqued(aiohttp_server,
                                                                       tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b"])
    script.on(model="m-a", tool_calls=[("call_1", "weather", '{"city": "Paris"}')])
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/critique", swarm=_swarm(),
                                    tools=tools)
    assert status == 200, body
    assert script.order() == ["m-a"]
    assert body["choices"][0]["message"]["tool_calls"] == [{
        "id": "call_1", "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]
    assert body["choices"][0]["finish_reason"] == "tool_calls"


async def test_with_tools_offered_critiques_and_revisions_answer_in_text(aiohttp_server,
                                                                        tmp_path):
    script = await _script(aiohttp_server)
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/critique", swarm=_swarm(rounds=1),
                                    tools=tools)
    assert status == 200, body
    first, *rest = script.calls
    assert "tool_choice" not in first.body  # the first answer may call tools
    assert all(c.body["tool_choice"] == "none" and c.body["tools"] == tools for c in rest)


async def test_critique_needs_two_members(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/critique", swarm=_swarm(["m-a"]))
    assert status == 400 and body["error"]["code"] == "invalid_swarm"
    assert not script.calls


async def test_no_member_answering_is_one_error_naming_each(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b"])
    script.on(model="m-a", status=500, message="a broke")
    script.on(model="m-b", status=503, message="b broke")
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        status, _, body = await ask(urls["router"], "swarm/critique", swarm=_swarm())
    assert status == 503, body
    assert body["error"]["code"] == "swarm_failed"
    message = body["error"]["message"]
    assert "member 0 (m-a)" in message and "member 1 (m-b)" in message
    assert script.order() == ["m-a", "m-b"]
