"""swarm/synthesize through a real router in front of scripted backends: who is asked
what and when, failures of every kind, streaming, the client leaving, the openai SDK."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import openai

from tests.conftest import until
from tests.fakes import scripted
from tests.swarm.flows import Q, ask, router, stream

MODELS = ["m-a", "m-b", "m-c"]
SYNTH = "Candidate answers"  # what only the synthesis prompt holds


def _synthesis(script):  # type: ignore[no-untyped-def]
    return [c for c in script.calls if SYNTH in c.prompt]


async def test_members_answer_in_parallel_then_the_first_merges(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    for m in MODELS:
        script.on(model=m, contains=SYNTH, text="Paris, merged.")
        script.on(model=m, text=f"Paris says {m}", hold=0.2)
    async with router(tmp_path, script.url) as urls:
        status, headers, body = await ask(urls["router"], "swarm/synthesize")
    assert status == 200, body
    assert headers["X-Eldric-Swarm"] == "synthesize"
    answers = [c for c in script.calls if SYNTH not in c.prompt]
    assert sorted(c.model for c in answers) == MODELS
    for c in answers:  # each member got the client's question, as it was asked
        assert c.messages == Q and not c.body.get("stream")
    # in parallel: all three were asked before the first one ended
    assert max(c.started for c in answers) < min(c.ended for c in answers)
    [synth] = _synthesis(script)
    assert synth.model == "m-a"  # the judge: the first member
    assert synth.started >= max(c.ended for c in answers)
    for m in MODELS:
        assert f"Paris says {m}" in synth.prompt
    assert "What is the capital of France?" in synth.prompt
    assert body["model"] == "swarm/synthesize"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Paris, merged."}
    # usage: the sum over the members and the synthesis, as each backend counted it
    want = {k: sum(r["usage"][k] for r in body["eldric"]["members"])
            for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    assert body["usage"] == want and want["completion_tokens"] == 3 * 3 + 2
    rec = body["eldric"]
    assert [(r["stage"], r["model"], r["outcome"]) for r in rec["members"]][-1] == \
        ("synthesis", "m-a", "ok")
    assert all(r["worker"] == script.url and r["latency_ms"] > 0 for r in rec["members"])
    assert rec["answer"]["by"] == "generated"


async def test_a_failing_member_is_dropped_and_its_text_never_reaches_the_merge(
        aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-b", contains="capital", status=400, message="LEAKED failure text")
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/synthesize")
    assert status == 200, body
    [synth] = _synthesis(script)
    assert "LEAKED" not in synth.prompt and "m-b answer" not in synth.prompt
    assert "m-a answer 0" in synth.prompt and "m-c answer 0" in synth.prompt
    assert "LEAKED" not in body["choices"][0]["message"]["content"]
    failed = [r for r in body["eldric"]["members"] if r["outcome"] != "ok"]
    assert [(r["model"], r["outcome"]) for r in failed] == [("m-b", "error")]
    assert "LEAKED failure text" in failed[0]["error"]  # recorded, for the client to see


async def test_a_member_is_failed_over_like_any_request(aiohttp_server, tmp_path):
    """m-b's first worker answers 500: the router tries its other worker, as it would
    for any request; the swarm sees one answer."""
    bad = await scripted.serve(aiohttp_server, ["m-b"], name="bad")
    bad.on(status=500)
    good = await scripted.serve(aiohttp_server, ["m-a", "m-b"], name="good")
    async with router(tmp_path, bad.url, good.url, strategy="round_robin") as urls:
        for _ in range(2):  # whichever worker round robin starts m-b on
            status, _, body = await ask(urls["router"], "swarm/synthesize",
                                        swarm={"members": ["m-a", "m-b"]})
            assert status == 200, body
            assert all(r["outcome"] == "ok" for r in body["eldric"]["members"])
    assert len(bad.calls) >= 1  # it was tried, and the answer came from the other


async def test_a_member_past_the_round_timeout_is_cancelled_and_the_answer_comes_first(
        aiohttp_server, tmp_path):
    """The slowest member would take 30 s: the streamed answer arrives long before it
    (at the round timeout), and its call is cancelled."""
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-c", contains="capital", hold=30)
    async with router(tmp_path, script.url, swarm_round_timeout=400) as urls:
        t0 = time.monotonic()
        got = await stream(urls["router"], "swarm/synthesize")
    assert got.status == 200
    assert got.times[0] - t0 < 5  # the first answer token long before m-c's 30 s
    slow = script.asked("m-c")[0]
    await script.wait(lambda s: slow.left, timeout=2)
    rec = got.last["eldric"]
    assert {r["model"]: r["outcome"] for r in rec["members"] if r["stage"] == "answer"} == \
        {"m-a": "ok", "m-b": "ok", "m-c": "timeout"}
    [timed_out] = [r for r in rec["members"] if r["model"] == "m-c"]
    assert "400 ms" in timed_out["error"] and timed_out["worker"] == script.url
    assert "m-c answer" not in _synthesis(script)[0].prompt


async def test_every_member_failing_is_one_error_naming_each(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-a", status=400, message="a is broken")
    script.on(model="m-b", status=400, message="b is broken")
    script.on(model="m-c", hang=True)
    async with router(tmp_path, script.url, swarm_round_timeout=300) as urls:
        status, headers, body = await ask(urls["router"], "swarm/synthesize")
        got = await stream(urls["router"], "swarm/synthesize")
    assert status == 503
    err = body["error"]
    assert err["code"] == "swarm_failed"
    for text in ("m-a", "a is broken", "m-b", "b is broken", "m-c", "300 ms"):
        assert text in err["message"], text
    assert not _synthesis(script)
    # streamed: the same error as the stream's one error event, then its end
    assert got.status == 200 and got.data[-1] == "[DONE]"
    assert got.data[-2]["error"]["code"] == "swarm_failed"
    assert "a is broken" in got.data[-2]["error"]["message"]
    assert not any(isinstance(d, dict) and d.get("choices") for d in got.data)


async def test_one_survivor_skips_the_merge(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-a", status=500)
    script.on(model="m-b", status=500)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/synthesize")
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "m-c answer 0"
    assert body["eldric"]["answer"] == {"by": "chosen", "member": 2, "model": "m-c",
                                        "reason": "the only member that answered"}
    assert not _synthesis(script)


async def test_the_merge_is_streamed_as_it_is_generated(aiohttp_server, tmp_path):
    """Progress comes as SSE comments at once; the synthesis model's tokens reach the
    client one by one while it is still generating."""
    script = await scripted.serve(aiohttp_server, MODELS)
    words = "Paris is the capital of France ."
    script.on(contains=SYNTH, text=words, delay=0.15)
    async with router(tmp_path, script.url) as urls:
        got = await stream(urls["router"], "swarm/synthesize",
                           stream_options={"include_usage": True})
    [synth] = _synthesis(script)
    assert synth.body["stream"] is True
    content = [(d, t) for d, t in zip(got.data, got.times)
               if isinstance(d, dict) and d.get("choices") and d["choices"][0]["delta"].get("content")]
    assert "".join(d["choices"][0]["delta"]["content"] for d, _ in content) == words
    assert len(content) == len(words.split())
    assert content[0][1] < synth.ended - 0.5  # the first token long before the last
    kinds = [c["type"] for c in got.comments]
    assert kinds[0] == "started" and kinds.count("member_done") == 3
    assert "final_started" in kinds
    assert all(d["model"] == "swarm/synthesize" for d in got.data if isinstance(d, dict))
    last = got.last  # the usage chunk, with the record
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3 * 3 + 7
    assert last["eldric"]["members"][-1]["usage"]["completion_tokens"] == 7


async def test_a_client_leaving_cancels_every_member_within_a_second(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(hold=30)
    async with router(tmp_path, script.url) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["router"] + "/v1/chat/completions",
                              json={"model": "swarm/synthesize", "messages": Q,
                                    "stream": True}) as r:
                await r.content.readuntil(b"\n\n")  # the swarm has started
                await script.wait(lambda sc: len(sc.calls) == 3)
                r.close()  # the client goes away
        left = time.monotonic()
        await script.wait(lambda sc: all(c.left for c in sc.calls), timeout=1.0)
        assert time.monotonic() - left < 1.0
        # and a whole (not streamed) request: the same
        task = asyncio.create_task(ask(urls["router"], "swarm/synthesize"))
        await script.wait(lambda sc: len(sc.calls) == 6)
        task.cancel()
        await script.wait(lambda sc: all(c.left for c in sc.calls), timeout=1.0)

        async def idle():  # every cancelled call is off the worker's in-flight count
            async with aiohttp.ClientSession() as s, \
                    s.get(urls["router"] + "/api/v1/workers") as r:
                return (await r.json())["workers"][0]["active_requests"] == 0
        await until(idle, timeout=1.0)


async def test_the_openai_sdk_reads_the_stream_and_ignores_the_progress(aiohttp_server,
                                                                        tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(contains=SYNTH, text="Paris indeed.")
    async with router(tmp_path, script.url) as urls:
        client = openai.AsyncOpenAI(base_url=urls["router"] + "/v1", api_key="x")
        chunks = [c async for c in await client.chat.completions.create(
            model="swarm/synthesize", messages=Q, stream=True)]
        whole = await client.chat.completions.create(model="swarm/synthesize", messages=Q)
    # every chunk the SDK hands over is a real chunk: no progress event among them
    assert all(c.object == "chat.completion.chunk" and c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Paris indeed."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["eldric"]["swarm"] == "synthesize"
    assert whole.choices[0].message.content == "Paris indeed."
    assert whole.model_extra["eldric"]["usage"] == whole.usage.model_dump(exclude_none=True)


async def test_synthesize_will_not_merge_tool_calls(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-b", tool_calls=[("call_1", "weather", '{"city": "Paris"}')])
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/synthesize", tools=tools)
    assert status == 400
    assert body["error"]["code"] == "swarm_refused"
    assert "tool calls" in body["error"]["message"]
    assert all(c.body["tools"] == tools for c in script.calls)  # members got the tools
    assert not _synthesis(script)


async def test_a_member_no_worker_serves_is_recorded_and_skipped(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b"])
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/synthesize",
                                    swarm={"members": ["m-a", "m-b", "nope"]})
    assert status == 200, body
    [nope] = [r for r in body["eldric"]["members"] if r["model"] == "nope"]
    assert nope["outcome"] == "error" and "not served by any worker" in nope["error"]
    assert nope["worker"] is None


async def test_the_synthesis_model_failing_is_a_clear_error_whole_or_mid_stream(
        aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(contains=SYNTH, call=1, status=400, message="synth refused")  # m-a's 2nd call
    script.on(contains=SYNTH, text="Paris is the capital", die_after=2)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/synthesize")
        got = await stream(urls["router"], "swarm/synthesize")
        async with aiohttp.ClientSession() as s, s.get(urls["router"] + "/api/v1/workers") as r:
            workers = (await r.json())["workers"]
    assert status == 503 and body["error"]["code"] == "swarm_failed"
    assert "synthesis" in body["error"]["message"] and "synth refused" in body["error"]["message"]
    # streamed: two tokens came, then one error event and the end; no record of success
    assert got.content == "Paris is"
    assert got.data[-1] == "[DONE]" and got.data[-2]["error"]["code"] == "swarm_failed"
    assert "mid-answer" in got.data[-2]["error"]["message"]
    # every call, finished or broken, is off the worker's in-flight count
    assert [w["active_requests"] for w in workers] == [0]
