"""A call a strategy makes on its own (swarm.ask: best_of_n's judge, critique's author and
revisions) that the round timeout cuts short is in the `eldric` record with its worker,
and counted as a member failure, as a fanned-out member's timeout is."""

from __future__ import annotations

from tests.conftest import metric
from tests.fakes import scripted
from tests.swarm.flows import ask, router

MODELS = ["m-a", "m-b", "m-c"]


async def test_a_judge_past_the_round_timeout_is_recorded(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(contains="Candidates:", hang=True)
    async with router(tmp_path, script.url, swarm_round_timeout=300) as urls:
        status, _, body = await ask(urls["router"], "swarm/best_of_n")
        stats = await _stats(urls["router"])
        failures = await metric(urls["router"], 'eldric_swarm_member_failures_total'
                                '{outcome="timeout",strategy="best_of_n"}')
    assert status == 200, body
    assert body["eldric"]["choice"]["by"] == "fallback"
    cut = [c for c in body["eldric"]["members"] if c["outcome"] == "timeout"]
    assert len(cut) == 1 and cut[0]["model"] == "m-a" and cut[0]["member"] == -1
    assert cut[0]["worker"] == script.url
    assert stats["best_of_n"]["member_failures"] == 1 and failures == 1


async def _stats(base: str) -> dict:
    import aiohttp
    async with aiohttp.ClientSession() as s, s.get(base + "/api/v1/swarm") as r:
        return (await r.json())["stats"]
