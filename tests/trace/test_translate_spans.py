"""The translation's child span (`eldric.translate`, from → to): a client API the backend
lacks (Anthropic's /v1/messages to a Chat Completions backend), and a native backend API
(the worker's Anthropic adapter), exported to the test's OTLP receiver."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import run_eldric, until, url_of
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import otlp
from tests.fakes.openai_server import KNOBS, MODELS

pytest.importorskip("opentelemetry.sdk")

SERVER, CLIENT, INTERNAL = 2, 3, 1
ERROR = 2
MESSAGES = {"model": MODELS[0], "max_tokens": 32,
            "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def collector(aiohttp_server):
    return await aiohttp_server(otlp.make_app())


async def test_client_api_translation_has_its_span(fake_openai_server, collector, tmp_path):
    """/v1/messages at a worker whose backend speaks Chat Completions: worker server span
    → eldric.translate (/v1/messages → /v1/chat/completions) → the CLIENT span the
    backend's traceparent names; whole and streamed."""
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server), paths="/v1/chat/completions",
                          otel_endpoint=url_of(collector)) as w:
        async with aiohttp.ClientSession() as s:
            for stream in (False, True):
                async with s.post(w["worker"] + "/v1/messages",
                                  json={**MESSAGES, "stream": stream}) as resp:
                    assert resp.status == 200
                    body = await resp.read()
                    assert (b"message_stop" in body) if stream else b'"type":"message"' in \
                        body.replace(b" ", b"")
    got = collector.app[otlp.RECEIVED]
    servers = [s for s in got.spans if s.kind == SERVER and s.attrs.get("url.path")
               == "/v1/messages"]
    assert len(servers) == 2
    sent = [q["headers"]["traceparent"] for q in fake_openai_server.app[KNOBS].requests
            if q["path"] == "/v1/chat/completions"]
    for ws, tp in zip(servers, sent):
        (tr,) = [s for s in got.spans if s.name == "eldric.translate"
                 and s.parent_id == ws.span_id]
        assert tr.kind == INTERNAL and tr.status != ERROR
        assert tr.attrs["eldric.translate.from"] == "/v1/messages"
        assert tr.attrs["eldric.translate.to"] == "/v1/chat/completions"
        assert tr.attrs["gen_ai.request.model"] == MODELS[0]
        assert "gen_ai.provider.name" not in tr.attrs  # not a provider the semconv names
        (wc,) = [s for s in got.spans if s.kind == CLIENT and s.parent_id == tr.span_id]
        assert tp.startswith(f"00-{ws.trace_id}-{wc.span_id}-")


async def test_native_backend_translation_span_and_its_failure(anthropic_server, collector,
                                                               tmp_path):
    """A worker fronting Anthropic's API (its native adapter): /v1/chat/completions gets an
    eldric.translate span to "anthropic"; the backend refusing (overloaded) makes it
    ERROR."""
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="anthropic",
                          backend_url=url_of(anthropic_server),
                          backend_api_key=fake_anthropic.API_KEY,
                          otel_endpoint=url_of(collector)) as w:
        chat = {"model": fake_anthropic.MODEL, "messages": [{"role": "user", "content": "x"}]}
        async with aiohttp.ClientSession() as s:
            async def ready() -> bool:
                async with s.get(w["worker"] + "/v1/models") as r:
                    return fake_anthropic.MODEL in await r.text()
            await until(ready, timeout=10)
            async with s.post(w["worker"] + "/v1/chat/completions", json=chat) as resp:
                assert resp.status == 200
            anthropic_server.app[fake_anthropic.KNOBS].scenario = "overloaded"
            async with s.post(w["worker"] + "/v1/chat/completions", json=chat) as resp:
                assert resp.status >= 500
    got = collector.app[otlp.RECEIVED]
    spans = [s for s in got.spans if s.name == "eldric.translate"]
    assert len(spans) == 2
    ok, failed = spans
    for tr in spans:
        (parent,) = [s for s in got.spans if s.span_id == tr.parent_id]
        assert parent.kind == SERVER and parent.attrs["url.path"] == "/v1/chat/completions"
        assert tr.attrs["eldric.translate.from"] == "/v1/chat/completions"
        assert tr.attrs["eldric.translate.to"] == "anthropic"
        assert tr.attrs["gen_ai.provider.name"] == "anthropic"  # the semconv's value
        assert tr.attrs["gen_ai.request.model"] == fake_anthropic.MODEL
    assert ok.status != ERROR and failed.status == ERROR
