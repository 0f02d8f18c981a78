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
            run_eldric("router", tmp_path / "r", workers=w["worker"], **common) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], api_key="sk-one",
                       otel_endpoint=endpoint) as e:
        async with aiohttp.ClientSession() as s:
            for stream in (False, True):
                async with s.post(e["edge"] + "/v1/chat/completions",
                                  json={**CHAT, "stream": stream},
                                  headers={"Authorization": "Bearer sk-one", "traceparent":
                                           f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"}) as resp:
                    assert resp.status == 200
                    await resp.read()
    # the apps' clean-up flushed their spans
    got = received(collector)
    routers = [s for s in got.named("eldric-router") if s.kind == SERVER
               and s.attrs.get("url.path") == "/v1/chat/completions"]
    workers = [s for s in got.named("eldric-worker") if s.kind == SERVER
               and s.attrs.get("url.path") == "/v1/chat/completions"]
    edges = [s for s in got.named("eldric-edge") if s.kind == SERVER
             and s.attrs.get("url.path") == "/v1/chat/completions"]
    assert len(edges) == len(routers) == len(workers) == 2
    sent = [q["headers"]["traceparent"] for q in fake_openai_server.app[KNOBS].requests
            if q["path"] == "/v1/chat/completions"]
    for i, (es, rs, ws) in enumerate(zip(edges, routers, workers)):
        # the client's trace continued, its span the edge's parent
        assert es.trace_id == rs.trace_id == ws.trace_id == CLIENT_TRACE
        assert es.parent_id == "b7ad6b7169203331"
        assert es.attrs["eldric.client"]
        assert es.attrs["gen_ai.usage.output_tokens"] > 0
        # edge server → its attempt at the router (eldric.attempt) → its client span
        (ea,) = [s for s in got.named("eldric-edge")
                 if s.name == "eldric.attempt" and s.parent_id == es.span_id]
        (ec,) = [s for s in got.named("eldric-edge")
                 if s.kind == CLIENT and s.parent_id == ea.span_id]
        assert rs.parent_id == ec.span_id
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


async def test_unsampled_exports_nothing_and_downstream_follows(fake_openai_server, collector,
                                                                tmp_path):
    """Ratio 0 at the router: no spans; the worker (ratio 1) follows the router's
    sampled=0, and the backend gets a traceparent saying so."""
    endpoint = url_of(collector)
    async with run_eldric("worker", tmp_path / "w", backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server), otel_endpoint=endpoint) as w, \
            run_eldric("router", tmp_path / "r", workers=w["worker"], port=0,
                       bind="127.0.0.1", otel_endpoint=endpoint, otel_sample_ratio=0.0) as r:
        async with aiohttp.ClientSession() as s:
            for _ in range(3):
                async with s.post(r["router"] + "/v1/chat/completions", json=CHAT) as resp:
                    assert resp.status == 200
    assert [s for s in received(collector).spans
            if s.attrs.get("url.path") == "/v1/chat/completions"] == []
    sent = [q["headers"]["traceparent"] for q in fake_openai_server.app[KNOBS].requests
            if q["path"] == "/v1/chat/completions"]
    assert len(sent) == 3 and all(int(t[-2:], 16) & 1 == 0 for t in sent)  # sampled bit


async def test_collector_down_requests_unaffected(fake_openai_server, tmp_path):
    """A collector nobody listens on: every request answers, quickly; stop is bounded."""
    import time

    from tests.conftest import free_port
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.perf_counter()
    async with run_eldric("worker", tmp_path / "w", backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server), otel_endpoint=dead) as w:
        async with aiohttp.ClientSession() as s:
            for _ in range(20):
                t = time.perf_counter()
                async with s.post(w["worker"] + "/v1/chat/completions", json=CHAT) as resp:
                    assert resp.status == 200
                assert time.perf_counter() - t < 0.5
    assert time.perf_counter() - t0 < 15  # shutdown's flush is bounded by the export timeout


async def test_missing_sdk_is_a_clear_start_up_error(tmp_path, monkeypatch):
    import sys

    from eldric.errors import ConfigError
    import eldric.trace
    monkeypatch.setitem(sys.modules, "eldric.trace.otel", None)  # import fails
    monkeypatch.delattr(eldric.trace, "otel", raising=False)
    with pytest.raises(ConfigError, match=r"eldric\[otel\]"):
        async with run_eldric("worker", tmp_path, backend="mock", port=0, bind="127.0.0.1",
                              otel_endpoint="http://127.0.0.1:1"):
            pass
