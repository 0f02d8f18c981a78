"""A streamed swarm whose final model (synthesis, verdict) answers 200 with a body that is
neither SSE nor a chat completion: a failed call like any other (the whole reply's
handling), never the stream's internal_error."""

from __future__ import annotations

from tests.fakes import scripted
from tests.swarm.flows import router, stream

MODELS = ["m-a", "m-b", "m-c"]


async def test_a_garbage_synthesis_fails_the_stream_naming_it(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-a", contains="Candidate answers", raw=b"<html>oops</html>")
    async with router(tmp_path, script.url) as urls:
        s = await stream(urls["router"], "swarm/synthesize")
    assert s.status == 200
    errors = [d for d in s.data if isinstance(d, dict) and "error" in d]
    assert [e["error"]["code"] for e in errors] == ["swarm_failed"], s.text
    assert "not a chat completion" in errors[0]["error"]["message"]
    assert s.data[-1] == "[DONE]"


async def test_a_garbage_verdict_falls_back_as_a_failing_judge_does(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-a", contains="final positions", raw=b"<html>oops</html>")  # verdict
    async with router(tmp_path, script.url) as urls:
        s = await stream(urls["router"], "swarm/debate")
    assert s.status == 200 and s.data[-1] == "[DONE]"
    assert not any(isinstance(d, dict) and "error" in d for d in s.data), s.text
    rec = s.last["eldric"]
    assert rec["answer"]["by"] == "chosen"  # the strategy's fallback
    verdict = [c for c in rec["members"] if c["stage"] == "verdict"]
    assert [c["outcome"] for c in verdict] == ["error"]
    assert "oops" not in s.content


async def test_a_final_model_ignoring_stream_is_in_the_usage_sum(aiohttp_server, tmp_path):
    """A synthesis model that answers a whole chat completion to a streamed request: its
    answer is sent, and its usage summed and its call recorded like a streamed one's."""
    import json
    script = await scripted.serve(aiohttp_server, MODELS)
    whole = {"id": "x", "object": "chat.completion", "created": 0, "model": "m-a",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "merged"},
                          "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}}
    script.on(model="m-a", contains="Candidate answers", raw=json.dumps(whole).encode())
    async with router(tmp_path, script.url) as urls:
        s = await stream(urls["router"], "swarm/synthesize")
    assert s.status == 200 and s.content == "merged", s.text
    rec = s.last["eldric"]
    members = sum(c["usage"]["completion_tokens"] for c in rec["members"]
                  if c["stage"] == "answer")
    assert rec["usage"]["completion_tokens"] == members + 50
    assert [c["outcome"] for c in rec["members"] if c["member"] == -1] == ["ok"]
