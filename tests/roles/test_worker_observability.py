"""/metrics counts what happened; one log line per request; keys never logged."""

from __future__ import annotations

import json
import re

import aiohttp

from tests.conftest import free_port, run_eldric, url_of
from tests.fakes.openai_server import MODELS

CHAT = {"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The sample's value; None when /metrics does not have it at all."""
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_count_requests_statuses_and_upstream(fake_openai_server, tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=url_of(fake_openai_server)) as urls:
        async with aiohttp.ClientSession() as s:
            for _ in range(3):
                async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
                    assert r.status == 200
            async with s.post(urls["worker"] + "/v1/chat/completions",
                              json={**CHAT, "stream": True}) as r:
                await r.read()
            async with s.post(urls["worker"] + "/v1/chat/completions", data=b"{") as r:
                assert r.status == 400
            async with s.get(urls["worker"] + "/metrics") as r:
                assert r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
    route = "/v1/chat/completions"
    assert _sample(text, "eldric_requests_total", role="worker", route=route, status="200",
                   model=MODELS[0]) == 4
    assert _sample(text, "eldric_requests_total", role="worker", route=route, status="400") == 1
    assert _sample(text, "eldric_request_duration_seconds_count", role="worker", route=route) == 5
    assert _sample(text, "eldric_time_to_first_byte_seconds_count", role="worker",
                   route=route) == 4
    assert _sample(text, "eldric_upstream_requests_total", role="worker",
                   upstream="backend:vllm", outcome="ok") == 4
    assert _sample(text, "eldric_upstream_healthy", role="worker", upstream="backend:vllm") == 1
    assert _sample(text, "eldric_active_requests", role="worker") == 1  # this /metrics call
    assert "process_resident_memory_bytes" in text


async def test_backend_down_shows_in_metrics(tmp_path):
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=f"http://127.0.0.1:{free_port()}") as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["worker"] + "/v1/chat/completions", json=CHAT) as r:
                assert r.status == 503
            async with s.get(urls["worker"] + "/metrics") as r:
                text = await r.text()
    assert _sample(text, "eldric_upstream_healthy", role="worker", upstream="backend:vllm") == 0
    assert _sample(text, "eldric_upstream_requests_total", role="worker",
                   upstream="backend:vllm", outcome="error") == 1


def test_one_json_log_line_per_request_and_no_keys(eldric_proc, tmp_path):
    import urllib.request

    port = free_port()
    proc = eldric_proc("--role", "worker", "--backend", "mock", "--bind", "127.0.0.1",
                       "--port", str(port), "--data-dir", str(tmp_path), "--log-format", "json",
                       "--backend-api-key", "sk-very-secret-backend",
                       "--api-key", "cluster-secret-key")
    proc.wait_http(f"http://127.0.0.1:{port}/health")
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps({"model": "eldric-mock", "stream": True,
                         "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Content-Type": "application/json", "X-Request-ID": "trace-me-1",
                 "Authorization": "Bearer sk-client-secret"})
    urllib.request.urlopen(req).read()
    out = proc.stop()
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    mine = [x for x in lines if x.get("request_id") == "trace-me-1"]
    assert len(mine) == 1
    line = mine[0]
    assert line["event"] == "request" and line["role"] == "worker"
    assert line["method"] == "POST" and line["path"] == "/v1/chat/completions"
    assert line["model"] == "eldric-mock" and line["upstream"] == "backend:mock"
    assert line["status"] == 200 and line["duration_ms"] > 0 and line["ttfb_ms"] > 0
    for secret in ("sk-very-secret-backend", "cluster-secret-key", "sk-client-secret"):
        assert secret not in out
