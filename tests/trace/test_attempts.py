"""Child spans of a hop (eldric.trace.child): a retried request at the router shows one
`eldric.attempt` span per worker tried, the failed one ERROR, each the parent of the
CLIENT span whose traceparent the worker continued."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import run_eldric, url_of
from tests.fakes import openai_server, otlp
from tests.fakes.openai_server import KNOBS, MODELS

pytest.importorskip("opentelemetry.sdk")

CHAT = {"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}
SERVER, CLIENT, INTERNAL = 2, 3, 1
ERROR = 2


async def test_retried_request_two_attempt_spans(aiohttp_server, tmp_path):
    collector = await aiohttp_server(otlp.make_app())
    bad = await aiohttp_server(openai_server.make_app())
    good = await aiohttp_server(openai_server.make_app())
    endpoint = url_of(collector)
    common = dict(port=0, bind="127.0.0.1", otel_endpoint=endpoint)
    async with run_eldric("worker", tmp_path / "a", backend="vllm",
                          backend_url=url_of(bad), **common) as wa, \
            run_eldric("worker", tmp_path / "b", backend="vllm",
                       backend_url=url_of(good), **common) as wb, \
            run_eldric("router", tmp_path / "r", workers=f"{wa['worker']},{wb['worker']}",
                       strategy="round_robin", max_failures=20, **common) as r:
        bad.app[KNOBS].fail_status = 503  # after start-up: both workers are in rotation
        bad.app[KNOBS].fail_body = (b'{"error": {"message": "overloaded", "type": '
                                    b'"ServiceUnavailableError", "code": 503}}')
        async with aiohttp.ClientSession() as s:
            for _ in range(4):  # round robin: some of them try the failing worker first
                async with s.post(r["router"] + "/v1/chat/completions", json=CHAT) as resp:
                    assert resp.status == 200
                    await resp.read()
    got = collector.app[otlp.RECEIVED]
    router = got.named("eldric-router")
    servers = [s for s in router if s.kind == SERVER
               and s.attrs.get("url.path") == "/v1/chat/completions"]
    assert len(servers) == 4
    retried = 0
    for srv in servers:
        attempts = sorted((s for s in router if s.name == "eldric.attempt"
                           and s.parent_id == srv.span_id),
                          key=lambda s: s.attrs["eldric.attempt"])
        assert attempts, "every routed request has its attempt span"
        assert attempts[-1].attrs["eldric.outcome"] == "ok"
        assert attempts[-1].status != ERROR
        for a in attempts:  # each attempt the parent of its own CLIENT span
            (c,) = [s for s in router if s.kind == CLIENT and s.parent_id == a.span_id]
        if len(attempts) == 2:
            retried += 1
            first, second = attempts
            assert first.status == ERROR
            assert first.attrs["http.response.status_code"] == 503
            assert first.attrs["eldric.retryable"] is True
            assert first.attrs["eldric.upstream"] != second.attrs["eldric.upstream"]
            assert [first.attrs["eldric.attempt"], second.attrs["eldric.attempt"]] == [1, 2]
        else:
            assert len(attempts) == 1
    assert retried >= 1


async def test_untraced_request_no_attempt_state(fake_openai_server, tmp_path):
    """Off: the Failover sees hop.span None and makes no span (NULL is never handed to
    forward); the request answers as before."""
    async with run_eldric("worker", tmp_path / "w", backend="vllm",
                          backend_url=url_of(fake_openai_server), port=0,
                          bind="127.0.0.1") as w, \
            run_eldric("router", tmp_path / "r", workers=w["worker"], port=0,
                       bind="127.0.0.1") as r:
        async with aiohttp.ClientSession() as s:
            async with s.post(r["router"] + "/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 200
    sent = [q["headers"] for q in fake_openai_server.app[KNOBS].requests
            if q["path"] == "/v1/chat/completions"]
    assert sent and "traceparent" not in {k.lower() for k in sent[0]}
