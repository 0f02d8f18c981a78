"""swarm/vote through a real router in front of scripted backends: exact (normalised)
match for short answers and tool calls, the judge for free text, the fallback rule for a
judge that fails or answers garbage, ties, failing members, streaming, tool calls."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes import scripted
from tests.swarm.flows import Q, ask, router, stream

MEMBERS = ["m-a", "m-b", "m-c"]
JUDGE = "Candidates:"  # what only the judge's grouping prompt holds
LONG = {"m-a": "The capital of France is Paris, a city on the river Seine.",
        "m-b": "Paris is the capital city of France and also its largest city.",
        "m-c": "I would say that the capital of France is Lyon, in the south east."}


def _swarm(members=MEMBERS, judge="m-j", **bounds):  # type: ignore[no-untyped-def]
    return {"members": members, "judge": judge, **bounds}


async def test_short_answers_are_counted_by_normalised_exact_match(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, [*MEMBERS, "m-j"])
    script.on(model="m-a", text="Paris.", hold=0.2)
    script.on(model="m-b", text="**paris**", hold=0.2)
    script.on(model="m-c", text="Lyon", hold=0.2)
    async with router(tmp_path, script.url) as urls:
        status, headers, body = await ask(urls["router"], "swarm/vote", swarm=_swarm())
    assert status == 200, body
    assert headers["X-Eldric-Swarm"] == "vote"
    assert sorted(script.order()) == MEMBERS and not script.asked("m-j")  # no judge needed
    for c in script.calls:
        assert c.messages == Q  # independently: each only the client's question
    assert max(c.started for c in script.calls) < min(c.ended for c in script.calls)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Paris."}
    choice = body["eldric"]["choice"]
    assert choice["by"] == "exact" and choice["index"] == 0 and choice["agree"] == [0, 1]
    assert choice["confidence"] == pytest.approx(2 / 3, abs=1e-3)
    assert choice["dissent"] == [{"members": [2], "models": ["m-c"], "answer": "Lyon"}]
    assert "2 of 3" in choice["reason"]
    assert body["eldric"]["answer"] == {"by": "chosen", "member": 0, "model": "m-a",
                                        "reason": "2 of 3 answers agree"}


async def test_free_text_is_grouped_by_the_judge(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, [*MEMBERS, "m-j"])
    for m, text in LONG.items():
        script.on(model=m, text=text)
    script.on(model="m-j", text='{"groups": [[0, 1], [2]]}')
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/vote", swarm=_swarm())
    assert status == 200, body
    [judge] = script.asked("m-j")
    assert judge.started >= max(c.ended for c in script.calls if c.model != "m-j")
    answers = {c.model: c for c in script.calls}
    for i, m in enumerate(MEMBERS):  # candidates numbered in member order
        assert f"[{i}]\n{LONG[m]}" in judge.prompt
    assert "What is the capital of France?" in judge.prompt
    assert judge.body["response_format"]["json_schema"]["name"] == "groups"
    assert judge.body["temperature"] == 0 and answers["m-a"].messages == Q
    assert body["choices"][0]["message"]["content"] == LONG["m-a"]
    choice = body["eldric"]["choice"]
    assert (choice["by"], choice["agree"], choice["confidence"]) == ("judge", [0, 1], 0.667)
    assert choice["dissent"][0]["models"] == ["m-c"]
    assert [r["stage"] for r in body["eldric"]["members"]].count("judge") == 1


@pytest.mark.parametrize("verdict,why", [
    ({"text": "They mostly say Paris."}, "no JSON"),
    ({"text": '{"groups": [[0], [1]]}'}, "each of the candidates"),  # one left out
    ({"text": '{"groups": [[0, 1], [1, 2]]}'}, "each of the candidates"),  # one twice
    ({"text": '{"groups": [[0, 7], [1, 2]]}'}, "each of the candidates"),
    ({"text": '{"groups": "all"}'}, "not a valid grouping"),
    ({"status": 500, "message": "judge is down"}, "judge is down"),
])
async def test_judge_garbage_falls_back_to_normalised_exact_match(aiohttp_server, tmp_path,
                                                                  verdict, why):
    script = await scripted.serve(aiohttp_server, [*MEMBERS, "m-j"])
    script.on(model="m-a", text=LONG["m-b"])
    script.on(model="m-b", text=LONG["m-c"])
    script.on(model="m-c", text=LONG["m-c"].upper())  # the same as m-b's, normalised
    script.on(model="m-j", **verdict)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/vote", swarm=_swarm())
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == LONG["m-c"]  # m-b's, the earliest
    choice = body["eldric"]["choice"]
    assert choice["by"] == "fallback" and choice["agree"] == [1, 2] and choice["index"] == 1
    assert why in choice["reason"] and "normalised exact match" in choice["reason"]
    assert "judge is down" not in json.dumps(body["choices"])


async def test_a_tie_goes_to_the_earliest_members_group(aiohttp_server, tmp_path):
    members = ["m-a", "m-b", "m-c", "m-d"]
    script = await scripted.serve(aiohttp_server, members)
    for m, text in zip(members, ["Lyon", "Paris", "paris!", "lyon"]):
        script.on(model=m, text=text)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/vote",
                                    swarm=_swarm(members, judge=None))
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "Lyon"
    choice = body["eldric"]["choice"]
    assert choice["agree"] == [0, 3] and choice["confidence"] == 0.5
    assert "tie" in choice["reason"]


async def test_failed_and_timed_out_members_are_dropped_from_the_count(aiohttp_server,
                                                                       tmp_path):
    members = ["m-a", "m-b", "m-c", "m-d"]
    script = await scripted.serve(aiohttp_server, members)
    script.on(model="m-a", text="Lyon")
    script.on(model="m-b", status=500, message="LEAKED error")
    script.on(model="m-c", hang=True)
    script.on(model="m-d", text="Paris")
    script.on(model="m-a", call=1, text="never asked twice")
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        status, _, body = await ask(urls["router"], "swarm/vote",
                                    swarm=_swarm(members, judge=None, round_timeout_ms=500))
    assert status == 200, body
    outcomes = {(r["model"], r["outcome"]) for r in body["eldric"]["members"]}
    assert {("m-b", "error"), ("m-c", "timeout")} <= outcomes
    assert script.asked("m-c")[0].left  # its call was cancelled, not left running
    choice = body["eldric"]["choice"]
    assert choice["confidence"] == 0.5 and choice["agree"] == [0]  # 1 of the 2 answers
    assert choice["dissent"] == [{"members": [3], "models": ["m-d"], "answer": "Paris"}]
    assert "LEAKED" not in json.dumps(body["choices"])


async def test_one_answer_is_the_answer_with_full_confidence(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MEMBERS)
    script.on(model="m-a", status=503)
    script.on(model="m-b", status=503)
    script.on(model="m-c", text=LONG["m-c"])
    async with router(tmp_path, script.url, max_attempts=1) as urls:
        status, _, body = await ask(urls["router"], "swarm/vote", swarm=_swarm(judge="m-c"))
    assert status == 200, body
    assert script.order().count("m-c") == 1  # no judge for one answer
    assert body["choices"][0]["message"]["content"] == LONG["m-c"]
    assert body["eldric"]["choice"]["confidence"] == 1.0


async def test_tool_calls_are_counted_by_call_and_the_winners_come_back_unchanged(
        aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, [*MEMBERS, "m-j"])
    script.on(model="m-a", tool_calls=[("call_a", "weather", '{"city": "Paris", "unit": "C"}')])
    script.on(model="m-b", tool_calls=[("call_b", "weather", '{"unit":"C","city":"Paris"}')])
    script.on(model="m-c", tool_calls=[("call_c", "weather", '{"city": "Lyon"}')])
    tools = [{"type": "function", "function": {
        "name": "weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string"}}}}}]
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/vote", swarm=_swarm(), tools=tools)
        got = await stream(urls["router"], "swarm/vote", swarm=_swarm(), tools=tools)
    assert status == 200, body
    assert not script.asked("m-j")  # tool calls are compared, not judged
    assert all(c.body["tools"] == tools for c in script.calls)  # members got the tools
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [{"id": "call_a", "type": "function", "function": {
        "name": "weather", "arguments": '{"city": "Paris", "unit": "C"}'}}]
    assert body["eldric"]["choice"]["agree"] == [0, 1]
    assert body["eldric"]["choice"]["dissent"][0]["answer"] == "tool calls: weather"
    deltas = [d["choices"][0]["delta"] for d in got.data if isinstance(d, dict) and d["choices"]]
    [call] = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert call == {"index": 0, "id": "call_a", "type": "function", "function": {
        "name": "weather", "arguments": '{"city": "Paris", "unit": "C"}'}}
    assert got.last["choices"][0]["finish_reason"] == "tool_calls"


async def test_streamed_vote_with_the_sdk(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, [*MEMBERS, "m-j"])
    for m, text in LONG.items():
        script.on(model=m, text=text)
    script.on(model="m-j", text='{"groups": [[0], [1, 2]]}')
    async with router(tmp_path, script.url) as urls:
        client = openai.AsyncOpenAI(base_url=urls["router"] + "/v1", api_key="x",
                                    max_retries=0)
        parts, report = [], None
        async for chunk in await client.chat.completions.create(
                model="swarm/vote", messages=Q, stream=True,
                extra_body={"swarm": _swarm()}):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            report = (chunk.model_extra or {}).get("eldric") or report
        await client.close()
    assert "".join(parts) == LONG["m-b"]
    assert report["choice"]["agree"] == [1, 2] and report["choice"]["by"] == "judge"
