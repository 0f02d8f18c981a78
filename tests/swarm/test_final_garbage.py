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
