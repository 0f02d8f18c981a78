"""eldric's own polling is not traced: a router health-checking its worker every few
seconds, the model-list sync, Prometheus scrapes of /metrics would otherwise fill the
tracing backend with one-span traces (the access log puts them at debug for the same
reason). A client's inference request, and a client's own /api/v1 call, still are."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import run_eldric, url_of
from tests.fakes import otlp
from tests.fakes.openai_server import MODELS

pytest.importorskip("opentelemetry.sdk")

SERVER = 2


async def test_health_metrics_and_eldric_polls_make_no_span(fake_openai_server,
                                                            aiohttp_server, tmp_path):
    collector = await aiohttp_server(otlp.make_app())
    async with run_eldric("worker", tmp_path / "w", backend="vllm", port=0,
                          bind="127.0.0.1", backend_url=url_of(fake_openai_server),
                          otel_endpoint=url_of(collector)) as w:
        async with aiohttp.ClientSession() as s:
            for path in ("/health", "/api/v1/health", "/metrics"):
                async with s.get(w["worker"] + path) as r:
                    assert r.status == 200, path
            async with s.get(w["worker"] + "/v1/models",
                             headers={"User-Agent": "eldric/0.1.0"}) as r:
                assert r.status == 200
            async with s.get(w["worker"] + "/v1/models") as r:  # a client's: traced
                assert r.status == 200
            async with s.post(w["worker"] + "/v1/chat/completions", json={
                    "model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}) as r:
                assert r.status == 200
    servers = [sp for sp in otlp_spans(collector) if sp.kind == SERVER]
    paths = sorted(sp.attrs["url.path"] for sp in servers)
    assert paths == ["/v1/chat/completions", "/v1/models"], paths


def otlp_spans(collector):  # type: ignore[no-untyped-def]
    return collector.app[otlp.RECEIVED].named("eldric-worker")
