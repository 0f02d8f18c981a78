"""Traces across hops: router → worker → backend as one trace, exported over OTLP/HTTP
to a receiver the test runs (tests/fakes/otlp.py)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import run_eldric, until, url_of
from tests.fakes import otlp
from tests.fakes.openai_server import KNOBS, MODELS

pytest.importorskip("opentelemetry.sdk")

CHAT = {"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}
SERVER, CLIENT = 2, 3
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
async def collector(aiohttp_server):
    return await aiohttp_server(otlp.make_app())


def received(collector) -> otlp.Received:
    return collector.app[otlp.RECEIVED]


async def test_router_worker_backend_one_trace(fake_openai_server, collector, tmp_path):
    endpoint = url_of(collector)
    common = dict(port=0, bind="127.0.0.1", otel_endpoint=endpoint)
    async with run_eldric("worker", tmp_path / "w", backend="vllm",
                          backend_url=url_of(fake_openai_server), **common) as w, \
            run_eldric("router", tmp_path / "r", workers=w["worker"], **common) as r:
        async with aiohttp.ClientSession() as s:
            for stream in (False, True):
                async with s.post(r["router"] + "/v1/chat/completions",
                                  json={**CHAT, "stream": stream},
                                  headers={"traceparent":
                                           f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"}) as resp:
                    assert resp.status == 200
                    await resp.read()
    # the apps' clean-up flushed their spans
    got = received(collector)
    routers = [s for s in got.named("eldric-router") if s.kind == SERVER
               and s.attrs.get("url.path") == "/v1/chat/completions"]
    workers = [s for s in got.named("eldric-worker") if s.kind == SERVER
               and s.attrs.get("url.path") == "/v1/chat/completions"]
    assert len(routers) == 2 and len(workers) == 2
    sent = [q["headers"]["traceparent"] for q in fake_openai_server.app[KNOBS].requests
            if q["path"] == "/v1/chat/completions"]
    for i, (rs, ws) in enumerate(zip(routers, workers)):
        # the client's trace continued, its span the router's parent
        assert rs.trace_id == ws.trace_id == CLIENT_TRACE
        assert rs.parent_id == "b7ad6b7169203331"
        assert rs.name == f"chat {MODELS[0]}"
        assert rs.attrs["gen_ai.request.model"] == MODELS[0]
        assert rs.attrs["gen_ai.operation.name"] == "chat"
        assert rs.attrs["http.response.status_code"] == 200
        assert rs.attrs["eldric.role"] == "router"
        assert rs.attrs["eldric.upstream"]
        assert "eldric.route_reason" in rs.attrs
        # router server → the worker's attempt (eldric.attempt) → its client span →
        # worker server
        (ra,) = [s for s in got.named("eldric-router")
                 if s.name == "eldric.attempt" and s.parent_id == rs.span_id]
        (rc,) = [s for s in got.named("eldric-router")
                 if s.kind == CLIENT and s.parent_id == ra.span_id]
        assert ws.parent_id == rc.span_id
        # worker server → worker client → the backend saw a traceparent naming it
        (wc,) = [s for s in got.named("eldric-worker")
                 if s.kind == CLIENT and s.parent_id == ws.span_id]
        assert sent[i] == f"00-{CLIENT_TRACE}-{wc.span_id}-01"
