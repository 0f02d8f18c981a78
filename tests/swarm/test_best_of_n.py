"""swarm/best_of_n: the judge's pick (structured, validated), its fallback rule, and the
chosen answer returned as it is, whole and streamed."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes import scripted
from tests.swarm.flows import ask, router, stream

MODELS = ["m-a", "m-b", "m-c"]
JUDGE = "Candidates:"  # what only the judge's prompt holds
ENSEMBLE = {"strategy": "best_of_n", "members": ["m-a", "m-b", "m-c"], "judge": "m-j"}


async def _script(aiohttp_server, verdict: str | None = None, **judge):  # type: ignore[no-untyped-def]
    script = await scripted.serve(aiohttp_server, [*MODELS, "m-j"])
    script.on(model="m-a", text="Paris.")
    script.on(model="m-b", text="The capital of France is Paris.")
    script.on(model="m-c", text="Lyon, I think.")
    if verdict is not None or judge:
        script.on(model="m-j", text=verdict, **judge)
    return script


async def test_the_judge_picks_by_index_and_the_answer_is_the_members_own(aiohttp_server,
                                                                        tmp_path):
    script = await _script(aiohttp_server, '{"index": 1, "reason": "complete and right"}')
    async with router(tmp_path, script.url, ensembles=json.dumps({"best": ENSEMBLE})) as urls:
        status, _, body = await ask(urls["router"], "best")
    assert status == 200, body
    members = [c for c in script.calls if c.model != "m-j"]
    [judge] = script.asked("m-j")
    assert judge.started >= max(c.ended for c in members)  # after every answer
    for i, text in enumerate(["Paris.", "The capital of France is Paris.", "Lyon, I think."]):
        assert f"[{i}]\n{text}" in judge.prompt  # numbered as the pick's index means
    assert "What is the capital of France?" in judge.prompt
    assert judge.body["response_format"]["type"] == "json_schema"
    assert judge.body["temperature"] == 0
    assert body["model"] == "best"
    assert body["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert body["eldric"]["choice"] == {"index": 1, "reason": "complete and right",
                                        "by": "judge"}
    assert [r["stage"] for r in body["eldric"]["members"]].count("judge") == 1


@pytest.mark.parametrize("verdict,why", [
    ("I like the second one best.", "no JSON"),
    ('{"index": 7, "reason": "x"}', "not one of 0..2"),
    ('{"choice": 1}', "not a valid pick"),
    ('{"index": "one"}', "not a valid pick"),
])
async def test_judge_garbage_falls_back_to_the_stated_rule(aiohttp_server, tmp_path,
                                                           verdict, why):
    script = await _script(aiohttp_server, verdict)
    async with router(tmp_path, script.url, ensembles=json.dumps({"best": ENSEMBLE})) as urls:
        status, _, body = await ask(urls["router"], "best")
    assert status == 200, body
    # the rule: the longest answer
    assert body["choices"][0]["message"]["content"] == "The capital of France is Paris."
    choice = body["eldric"]["choice"]
    assert choice["by"] == "fallback" and choice["index"] == 1
    assert why in choice["reason"] and "the longest answer" in choice["reason"]
    assert verdict not in body["choices"][0]["message"]["content"]


async def test_a_failing_judge_falls_back_too(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server, status=500, message="judge down")
    async with router(tmp_path, script.url, ensembles=json.dumps({"best": ENSEMBLE})) as urls:
        status, _, body = await ask(urls["router"], "best")
    assert status == 200
    assert body["eldric"]["choice"]["by"] == "fallback"
    assert "judge down" in body["eldric"]["choice"]["reason"]
    assert "judge down" not in body["choices"][0]["message"]["content"]


async def test_the_judge_defaults_to_the_first_member(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b"])
    script.on(model="m-a", contains=JUDGE, text='{"index": 0, "reason": "short"}')
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/best_of_n",
                                    swarm={"members": ["m-b", "m-a", "m-b"]})
    assert status == 200
    assert [c.model for c in script.calls if JUDGE in c.prompt] == ["m-b"]
    del body


async def test_repeats_of_one_model_with_their_own_settings(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    script.on(contains=JUDGE, text='{"index": 2, "reason": "hot"}')
    members = [{"model": "m-a", "temperature": t, "max_tokens": 9, "system": f"be {t}"}
               for t in (0.0, 0.7, 1.3)]
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/best_of_n",
                                    messages=[{"role": "system", "content": "client's"},
                                              {"role": "user", "content": "hi"}],
                                    swarm={"members": members})
    assert status == 200, body
    answers = [c for c in script.calls if JUDGE not in c.prompt]
    assert sorted(c.body["temperature"] for c in answers) == [0.0, 0.7, 1.3]
    for c in answers:  # a member's system prompt replaces the client's
        assert c.body["max_tokens"] == 9
        assert c.messages == [{"role": "system", "content": f"be {c.body['temperature']}"},
                              {"role": "user", "content": "hi"}]
    assert body["eldric"]["choice"]["index"] == 2  # the third member: temperature 1.3
    [hot] = [c for c in answers if c.body["temperature"] == 1.3]
    assert body["choices"][0]["message"]["content"] == f"m-a answer {hot.index}"


async def test_streamed_best_of_n_with_the_sdk_and_the_record_last(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server, '{"index": 2, "reason": "bold"}')
    async with router(tmp_path, script.url, ensembles=json.dumps({"best": ENSEMBLE})) as urls:
        client = openai.AsyncOpenAI(base_url=urls["router"] + "/v1", api_key="x")
        chunks = [c async for c in await client.chat.completions.create(
            model="best", messages=[{"role": "user", "content": "capital of France?"}],
            stream=True, stream_options={"include_usage": True})]
        raw = await stream(urls["router"], "best")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Lyon, I think."
    assert chunks[-1].usage.total_tokens == sum(
        r["usage"]["total_tokens"] for r in chunks[-1].model_extra["eldric"]["members"])
    assert chunks[-1].model_extra["eldric"]["choice"]["index"] == 2
    assert [c["type"] for c in raw.comments][:1] == ["started"]
    assert raw.content == "Lyon, I think."


async def test_a_chosen_members_tool_calls_come_back_unchanged(aiohttp_server, tmp_path):
    script = await _script(aiohttp_server, '{"index": 0, "reason": "uses the tool"}')
    script.rules.insert(0, scripted.Rule("m-a", None, None, scripted.Reply(
        tool_calls=[("call_9", "weather", '{"city": "Paris"}')])))
    async with router(tmp_path, script.url, ensembles=json.dumps({"best": ENSEMBLE})) as urls:
        status, _, body = await ask(urls["router"], "best", tools=[{
            "type": "function", "function": {"name": "weather", "parameters": {}}}])
        got = await stream(urls["router"], "best", tools=[{
            "type": "function", "function": {"name": "weather", "parameters": {}}}])
    assert status == 200, body
    judge = [c for c in script.asked("m-j")][0]
    assert '[0]\n(tool calls) weather({"city": "Paris"})' in judge.prompt
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [{"id": "call_9", "type": "function", "function": {
        "name": "weather", "arguments": '{"city": "Paris"}'}}]
    deltas = [d["choices"][0]["delta"] for d in got.data if isinstance(d, dict) and d["choices"]]
    [call] = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert call == {"index": 0, "id": "call_9", "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
