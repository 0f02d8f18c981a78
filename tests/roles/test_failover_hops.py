"""Every hop that fails over does it through one Failover, so every hop counts its retries
on /metrics (eldric_upstream_retries_total), the edge and the cloud worker as the router."""

from __future__ import annotations

import aiohttp

from tests.conftest import run_cloud, run_eldric, url_of
from tests.fakes import openai_server
from tests.fakes.openai_server import KNOBS

MSG = [{"role": "user", "content": "hi"}]


def _retries(metrics: str, role: str, upstream: str) -> float:
    prefix = f'eldric_upstream_retries_total{{role="{role}",upstream="{upstream}"}} '
    lines = [line for line in metrics.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


async def test_the_edge_counts_a_retry_on_the_next_router(aiohttp_server, tmp_path):
    failing = await aiohttp_server(openai_server.make_app())  # its /health passes
    failing.app[KNOBS].fail_status = 503
    bad = url_of(failing)
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        async with run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                              bind="127.0.0.1", routers=f"{bad},{w['worker']}",
                              api_key="k", health_interval=60000) as e:
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as s:
                for _ in range(2):  # the order rotates: one of them starts at the failing one
                    async with s.post(e["edge"] + "/v1/chat/completions",
                                      json={"model": "eldric-mock", "messages": MSG}) as r:
                        assert r.status == 200
                async with s.get(e["edge"] + "/metrics") as r:
                    metrics = await r.text()
    assert _retries(metrics, "edge", bad) == 1
    assert _retries(metrics, "edge", w["worker"]) == 0


async def test_the_cloud_worker_counts_a_retry_on_the_next_backend(aiohttp_server, tmp_path):
    first = await aiohttp_server(openai_server.make_app())
    second = await aiohttp_server(openai_server.make_app())
    for server in (first, second):
        server.app[KNOBS].models = ["m"]
    async with run_cloud(tmp_path, f"first:{url_of(first)}/v1,second:{url_of(second)}/v1") as urls:
        first.app[KNOBS].fail_status = 500
        first.app[KNOBS].fail_body = b'{"error": {"message": "boom"}}'
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["cloud"] + "/v1/chat/completions",
                              json={"model": "m", "messages": MSG}) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "second"
            async with s.get(urls["cloud"] + "/metrics") as r:
                metrics = await r.text()
    assert _retries(metrics, "cloud", "first") == 1
    assert _retries(metrics, "cloud", "second") == 0
