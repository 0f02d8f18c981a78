"""W3C trace context at a hop's edge: a malformed incoming traceparent never fails the
request (a new trace starts), the caller's tracestate goes on to the backend, and a
first hop's --otel-sample-ratio is honoured."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import run_eldric, url_of
from tests.fakes import otlp
from tests.fakes.openai_server import KNOBS, MODELS

pytest.importorskip("opentelemetry.sdk")

CHAT = {"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}
SERVER = 2
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def collector(aiohttp_server):
    return await aiohttp_server(otlp.make_app())


def _chats(collector) -> list:
    return [s for s in collector.app[otlp.RECEIVED].spans if s.kind == SERVER
            and s.attrs.get("url.path") == "/v1/chat/completions"]


BAD = ["garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
       f"00-{TRACE}-" + "0" * 16 + "-01", f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff
       f"00-{TRACE.upper()}-00f067aa0ba902b7-01", "00-abc-def-01", "",
       f"00-{TRACE}-00f067aa0ba902b7-01-extra", "\u00e9t\u00e9"]


async def test_malformed_traceparent_starts_a_new_trace(fake_openai_server, collector,
                                                        tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server),
                          otel_endpoint=url_of(collector)) as w:
        async with aiohttp.ClientSession() as s:
            for bad in BAD:
                async with s.post(w["worker"] + "/v1/chat/completions", json=CHAT,
                                  headers={"traceparent": bad,
                                           "tracestate": "k=v"}) as resp:
                    assert resp.status == 200, bad
                    await resp.read()
    spans = _chats(collector)
    assert len(spans) == len(BAD)
    for span in spans:  # each one a root of its own valid trace
        assert span.parent_id == "" and span.trace_id not in (TRACE, "0" * 32)
    sent = [q["headers"]["traceparent"] for q in fake_openai_server.app[KNOBS].requests
            if q["path"] == "/v1/chat/completions"]
    assert all(t.split("-")[1] in {s.trace_id for s in spans} for t in sent)


async def test_tracestate_goes_on_with_the_trace(fake_openai_server, collector, tmp_path):
    state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server),
                          otel_endpoint=url_of(collector)) as w:
        async with aiohttp.ClientSession() as s:
            async with s.post(w["worker"] + "/v1/chat/completions", json=CHAT,
                              headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
                                       "tracestate": state}) as resp:
                assert resp.status == 200
    (q,) = [q for q in fake_openai_server.app[KNOBS].requests
            if q["path"] == "/v1/chat/completions"]
    assert q["headers"]["traceparent"].split("-")[1] == TRACE
    assert q["headers"]["tracestate"] == state


async def test_sample_ratio_is_honoured(fake_openai_server, collector, tmp_path):
    """Ratio 0.5 at a first hop (no incoming traceparent), 60 requests: about half are
    exported (binomial: outside 15..45 has a chance below 1e-4)."""
    n = 60
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server),
                          otel_endpoint=url_of(collector), otel_sample_ratio=0.5) as w:
        async with aiohttp.ClientSession() as s:
            for _ in range(n):
                async with s.post(w["worker"] + "/v1/chat/completions", json=CHAT) as resp:
                    assert resp.status == 200
    sampled = len(_chats(collector))
    assert 15 <= sampled <= 45, sampled
    sent = [q["headers"]["traceparent"] for q in fake_openai_server.app[KNOBS].requests
            if q["path"] == "/v1/chat/completions"]
    # the backend is told which: as many sampled flags as exported spans
    assert sum(int(t[-2:], 16) & 1 for t in sent) == sampled
