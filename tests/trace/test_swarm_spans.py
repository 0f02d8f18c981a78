"""A swarm request traced: under the router's request span one `eldric.swarm.member`
span per member (model, worker, outcome, tokens; a failed member ERROR) and one
`eldric.swarm.judge` span for the synthesis, each the parent of its call's attempt."""

from __future__ import annotations

import pytest

from tests.conftest import url_of
from tests.fakes import otlp, scripted
from tests.swarm.flows import ask, router, stream

pytest.importorskip("opentelemetry.sdk")

MODELS = ["m-a", "m-b", "m-c"]
SYNTH = "Candidate answers"
SERVER, ERROR = 2, 2


@pytest.mark.parametrize("streamed", [False, True])
async def test_swarm_member_and_judge_spans(aiohttp_server, tmp_path, streamed):
    collector = await aiohttp_server(otlp.make_app())
    script = await scripted.serve(aiohttp_server, MODELS)
    for m in MODELS:
        script.on(model=m, contains=SYNTH, text="Paris, merged.")
    script.on(model="m-b", status=500)  # one member fails (on_member_error: skip)
    for m in ("m-a", "m-c"):
        script.on(model=m, text=f"Paris says {m}")
    async with router(tmp_path, script.url, otel_endpoint=url_of(collector)) as urls:
        if streamed:
            got = await stream(urls["router"], "swarm/synthesize")
            assert got.status == 200 and "Paris, merged." in got.content
        else:
            status, _, body = await ask(urls["router"], "swarm/synthesize")
            assert status == 200, body
    spans = collector.app[otlp.RECEIVED].named("eldric-router")
    (srv,) = [s for s in spans if s.kind == SERVER]
    members = {s.attrs["gen_ai.request.model"]: s for s in spans
               if s.name == "eldric.swarm.member"}
    assert set(members) == set(MODELS)
    for m, s in members.items():
        assert s.parent_id == srv.span_id and s.trace_id == srv.trace_id
        assert s.attrs["eldric.swarm.strategy"] == "synthesize"
        assert s.attrs["eldric.worker"] == script.url
        # its call's attempt hangs under it
        (a,) = [x for x in spans if x.name == "eldric.attempt" and x.parent_id == s.span_id]
    assert members["m-b"].status == ERROR and members["m-b"].attrs["eldric.outcome"] == "error"
    for m in ("m-a", "m-c"):
        assert members[m].status != ERROR and members[m].attrs["eldric.outcome"] == "ok"
        assert members[m].attrs["gen_ai.usage.output_tokens"] > 0
    (judge,) = [s for s in spans if s.name == "eldric.swarm.judge"]
    assert judge.parent_id == srv.span_id
    assert judge.attrs["eldric.swarm.stage"] == "synthesis"
    assert judge.attrs["gen_ai.request.model"] == "m-a"
    assert judge.attrs["eldric.outcome"] == "ok" and judge.status != ERROR
