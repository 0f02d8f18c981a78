"""swarm/debate through a real router in front of scripted backends: every member
answers, then argues seeing the others' last turns, for `rounds` rounds; the judge's
verdict on the final positions streamed as generated; members failing a round, a round
failing, one position left, a failing judge, tool calls."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from eldric.roles.router.swarm.strategies.debate import VERDICT_SYSTEM
from tests.fakes import scripted
from tests.swarm.flows import Q, ask, router, stream

MEMBERS = ["m-a", "m-b", "m-c"]
R1 = {"m-a": "Paris.", "m-b": "Lyon, surely.", "m-c": "Marseille."}
R2 = {"m-a": "Still Paris: it is the seat of government.",
      "m-b": "Paris, I was wrong about Lyon.", "m-c": "Paris, agreed."}
VERDICT = "The capital of France is Paris."
OTHERS = "The other participants answered"  # what only a later round's prompt holds


def _swarm(members=MEMBERS, **bounds):  # type: ignore[no-untyped-def]
    return {"members": list(members), "judge": "m-j", **bounds}


async def _script(aiohttp_server, rounds=2):  # type: ignore[no-untyped-def]
    script = await scripted.serve(aiohttp_server, [*MEMBERS, "m-j"])
    for m in MEMBERS:
        script.on(model=m, call=0, text=R1[m], hold=0.1)
        script.on(model=m, call=1, text=R2[m], hold=0.1)
        script.on(model=m, text=f"{m} round {rounds}")
    script.on(model="m-j", text=VERDICT, delay=0.05)
    return script


async def test_members_argue_seeing_the_others_last_turn_then_the_judge_decides(
        aiohttp_server, tmp_path):
    script = await _script(aiohttp_server)
    async with router(tmp_path, script.url) as urls:
        status, headers, body = await ask(urls["router"], "swarm/debate",
                                          swarm=_swarm(rounds=2))
    assert status == 200, body
    assert headers["X-Eldric-Swarm"] == "debate"
    first = [c for c in script.calls if c.model != "m-j" and c.index == 0]
    second = [c for c in script.calls if c.model != "m-j" and c.index == 1]
    [verdict] = script.asked("m-j")
    assert sorted(c.model for c in first) == sorted(c.model for c in second) == MEMBERS
    # each round in parallel, round 2 after every round-1 turn, the judge after round 2
    assert max(c.started for c in first) < min(c.ended for c in first)
    assert min(c.started for c in second) >= max(c.ended for c in first)
    assert max(c.started for c in second) < min(c.ended for c in second)
    assert verdict.started >= max(c.ended for c in second)
    for c in first:
        assert c.messages == Q
    for c in second:  # its own last turn as its own, the others' in the prompt
        assert c.messages[:-2] == Q
        assert c.messages[-2] == {"role": "assistant", "content": R1[c.model]}
        note = c.messages[-1]["content"]
        others = [m for m in MEMBERS if m != c.model]
        for i, m in enumerate(others):
            assert f"[{i}]\n{R1[m]}" in note
        assert R1[c.model] not in note
    assert verdict.system.startswith(VERDICT_SYSTEM)
    for i, m in enumerate(MEMBERS):  # the final positions, not round 1's
        assert f"[{i}]\n{R2[m]}" in verdict.prompt
    assert not any(R1[m] in verdict.prompt for m in ("m-b", "m-c"))
    assert "What is the capital of France?" in verdict.prompt
    assert body["choices"][0]["message"]["content"] == VERDICT
    rec = body["eldric"]
    stages = [c["stage"] for c in rec["members"]]
    assert stages == ["round 1"] * 3 + ["round 2"] * 3 + ["verdict"]
    assert rec["answer"]["by"] == "generated" and "after round 2" in rec["answer"]["reason"]


async def test_three_rounds_and_the_verdict_streamed_as_generated(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server, rounds=3)
    async with router(tmp_path, script.url) as urls:
        got = await stream(urls["router"], "swarm/debate", swarm=_swarm(rounds=3))
    assert got.status == 200
    assert [c.index for c in script.asked("m-a")] == [0, 1, 2]
    [a3] = script.asked("m-a")[2:]
    assert a3.messages[-2]["content"] == R2["m-a"] and R2["m-b"] in a3.messages[-1]["content"]
    [verdict] = script.asked("m-j")
    assert "m-b round 3" in verdict.prompt and verdict.body["stream"] is True
    assert got.content == VERDICT
    pieces = [d for d in got.data if isinstance(d, dict) and d.get("choices")
              and d["choices"][0]["delta"].get("content")]
    assert len(pieces) == len(VERDICT.split())
    assert got.times[-1] - got.times[0] >= 0.15
    done = [c["stage"] for c in got.comments if c.get("type") == "member_done"]
    assert done == ["round 1"] * 3 + ["round 2"] * 3 + ["round 3"] * 3


async def test_a_member_failing_a_round_is_dropped_from_the_rest(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server)
    script.rules.insert(0, scripted.Rule("m-c", None, 0, scripted.Reply(
        status=500, message="LEAKED c failed")))
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        status, _, body = await ask(urls["router"], "swarm/debate", swarm=_swarm(rounds=2))
    assert status == 200, body
    assert len(script.asked("m-c")) == 1  # not asked in round 2
    for c in script.calls[3:]:
        assert "LEAKED" not in c.prompt and R1["m-c"] not in c.prompt
    [b2] = [c for c in script.asked("m-b") if c.index == 1]
    assert f"[0]\n{R1['m-a']}" in b2.messages[-1]["content"]
    [verdict] = script.asked("m-j")
    assert R2["m-a"] in verdict.prompt and R2["m-b"] in verdict.prompt
    assert ("round 1", "m-c", "error") in [(c["stage"], c["model"], c["outcome"])
                                           for c in body["eldric"]["members"]]


async def test_a_round_nobody_answers_ends_the_debate_on_the_last_good_one(aiohttp_server,
                                                                          tmp_path):
    script = await _script(aiohttp_server)
    for m in MEMBERS:
        script.rules.insert(0, scripted.Rule(m, OTHERS, None, scripted.Reply(hang=True)))
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/debate",
                                    swarm=_swarm(rounds=3, round_timeout_ms=400))
    assert status == 200, body
    await script.wait(lambda sc: not sc.running(), timeout=1)  # the hung turns cancelled
    [verdict] = script.asked("m-j")
    for i, m in enumerate(MEMBERS):
        assert f"[{i}]\n{R1[m]}" in verdict.prompt
    assert "after round 1" in body["eldric"]["answer"]["reason"]
    assert [c["outcome"] for c in body["eldric"]["members"]].count("timeout") == 3


async def test_one_position_left_skips_the_judge(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server)
    for m in ("m-b", "m-c"):
        script.rules.insert(0, scripted.Rule(m, None, None, scripted.Reply(status=503)))
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        status, _, body = await ask(urls["router"], "swarm/debate", swarm=_swarm(rounds=3))
    assert status == 200, body
    assert not script.asked("m-j") and len(script.asked("m-a")) == 1  # nobody to argue with
    assert body["choices"][0]["message"]["content"] == R1["m-a"]
    assert body["eldric"]["answer"]["by"] == "chosen"


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_failing_judge_falls_back_to_the_most_common_position(aiohttp_server,
                                                                     tmp_path, streamed):
    script = await scripted.serve(aiohttp_server, [*MEMBERS, "m-j"])
    script.on(model="m-a", call=1, text="Lyon")
    script.on(model="m-b", call=1, text="paris")
    script.on(model="m-c", call=1, text="Paris!")
    script.on(model="m-j", status=500, message="LEAKED judge error")
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        if streamed:
            got = await stream(urls["router"], "swarm/debate", swarm=_swarm(rounds=2))
            text, rec = got.content, got.last["eldric"]
        else:
            status, _, body = await ask(urls["router"], "swarm/debate", swarm=_swarm(rounds=2))
            assert status == 200, body
            text, rec = body["choices"][0]["message"]["content"], body["eldric"]
    assert text == "paris"  # m-b's: the first of the two that agree
    assert rec["answer"] == {"by": "chosen", "member": 1, "model": "m-b", "reason":
                             "the judge failed: fell back to the most common final position "
                             "(normalised exact match; a tie: the earliest member's)"}
    assert (rec["members"][-1]["stage"], rec["members"][-1]["outcome"]) == ("verdict", "error")
    assert "LEAKED" not in text


async def test_tool_calls_cannot_be_debated(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server)
    script.rules.insert(0, scripted.Rule("m-b", None, None, scripted.Reply(
        tool_calls=[("call_1", "weather", "{}")])))
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    async with router(tmp_path, script.url) as urls:
        status, headers, body = await ask(urls["router"], "swarm/debate", swarm=_swarm(),
                                          tools=tools)
        got = await stream(urls["router"], "swarm/debate", swarm=_swarm(), tools=tools)
    assert status == 400, body
    assert body["error"]["code"] == "swarm_refused" and body["error"]["param"] == "tools"
    assert "tool calls" in body["error"]["message"]
    assert headers["X-Eldric-Swarm"] == "debate"
    assert not script.asked("m-j")
    errors = [d for d in got.data if isinstance(d, dict) and "error" in d]
    assert errors and errors[0]["error"]["code"] == "swarm_refused"


async def test_with_tools_offered_later_turns_and_the_verdict_answer_in_text(aiohttp_server,
                                                                             tmp_path):
    script = await _script(aiohttp_server)
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/debate", swarm=_swarm(rounds=2),
                                    tools=tools)
    assert status == 200, body
    first = [c for c in script.calls if c.model != "m-j" and c.index == 0]
    later = [c for c in script.calls if c not in first]
    assert all("tool_choice" not in c.body for c in first)
    assert later and all(c.body["tool_choice"] == "none" for c in later)


async def test_debate_needs_two_members(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/debate", swarm=_swarm(["m-a"]))
    assert status == 400 and body["error"]["code"] == "invalid_swarm"
    assert json.dumps(script.calls) == "[]"


async def test_a_client_leaving_mid_debate_cancels_every_member_within_a_second(
        aiohttp_server, tmp_path):
    """Round 2 goes out on the keep-alive connections round 1 left: those are closed too."""
    script = await _script(aiohttp_server)
    for m in MEMBERS:
        script.rules.insert(0, scripted.Rule(m, OTHERS, None, scripted.Reply(hold=30)))
    async with router(tmp_path, script.url) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["router"] + "/v1/chat/completions", json={
                    "model": "swarm/debate", "messages": Q, "stream": True,
                    "swarm": _swarm(rounds=2)}) as r:
                await script.wait(lambda sc: len(sc.calls) == 6)  # round 2 under way
                r.close()  # the client goes away
        left = time.monotonic()
        await script.wait(lambda sc: all(c.left for c in sc.calls[3:]), timeout=1.0)
        assert time.monotonic() - left < 1.0
    assert not script.asked("m-j")
