"""AI routing with the real SmolLM2-135M (llama.cpp, embedded) as the deciding model,
end to end: the router asks itself for the decision (the model is one of its workers),
the decider's own request is not AI-routed, the model's grammar-bound answer names a
worker, and GET /api/v1/ai/status shows the decisions and their latency. One test on
purpose (it loads the model; the machine has two cores). Skipped, or failed under
CI=true, without the model, as tests/roles/test_worker_embedded.py."""

from __future__ import annotations

import os

import aiohttp
import pytest

from tests.real_model import require_real_model
from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import worker as fake_worker

MODEL = "SmolLM2-135M-Instruct"

require_real_model()


@pytest.mark.timeout(180)
async def test_smollm2_decides_through_the_router_itself(aiohttp_server, tmp_path):
    fakes = [await aiohttp_server(fake_worker.make_app(n, ["m1"]), port=free_port())
             for n in ("a", "b")]
    ua, ub = (url_of(f) for f in fakes)
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded") as w, aiohttp.ClientSession() as s:
        async def ready():
            async with s.get(w["worker"] + "/health") as r:
                return r.status == 200
        await until(ready, timeout=60)
        port = free_port()
        me = f"http://127.0.0.1:{port}"
        # a generous deadline: two shared cores; the figure is what status reports
        async with run_eldric("router", tmp_path / "r", port=port, bind="127.0.0.1",
                              workers=f"{w['worker']},{ua},{ub}", strategy="round_robin",
                              ai_mode="autonomous", ai_model=MODEL, ai_url=me,
                              ai_timeout="30000", ai_cache_size="0") as r:
            replies = []
            for _ in range(4):
                async with s.post(r["router"] + "/v1/chat/completions",
                                  headers={"X-Eldric-Routing-Info": "body"},
                                  json={"model": "m1", "messages": [
                                      {"role": "user", "content": "Say hello."}]}) as resp:
                    replies.append((resp.status, resp.headers.copy(), await resp.json()))
            async with s.get(r["router"] + "/api/v1/ai/status") as resp:
                st = await resp.json()
    for status, headers, body in replies:
        assert status == 200, body
        assert headers["X-Eldric-Strategy"] == "ai_routing", headers
        assert headers["X-Eldric-Worker"] in (ua, ub)
        assert headers["X-Eldric-Route-Reason"]  # the model's own words, one line
        assert body["routing"] == {"strategy": "ai_routing",
                                   "reason": headers["X-Eldric-Route-Reason"]}
        assert body["worker"] == headers["X-Eldric-Worker"]
    assert st["mode"] == "autonomous" and st["model"] == MODEL
    assert st["asked"] == 4 and st["decisions"] == 4 and st["fallbacks"] == 0, st
    lat = st["latency_ms"]
    assert lat["count"] == 4 and 0 < lat["p50"] <= lat["p99"] < 30000
    print(f"SmolLM2 decision latency: {lat}")
