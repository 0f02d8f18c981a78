"""A "come back later" (503 or 429 with Retry-After: a worker's model still loading) that
every upstream said reaches the client as it was said, through router and edge: its
status, Retry-After and body (the load's progress), not a 503 naming the attempts."""

from __future__ import annotations

import json

import aiohttp

from tests.conftest import run_eldric, url_of
from tests.fakes import openai_server
from tests.fakes.openai_server import KNOBS

MSG = [{"role": "user", "content": "hi"}]
LOADING = json.dumps({"error": {
    "message": "model big is loading", "type": "api_error", "param": None,
    "code": "model_loading", "progress": {"model": "big", "state": "loading",
                                          "estimated_percent": 40}}}).encode()


async def _loading(aiohttp_server, status=503):
    server = await aiohttp_server(openai_server.make_app())
    k = server.app[KNOBS]
    k.models = ["big"]
    k.fail_status, k.fail_body, k.fail_headers = status, LOADING, {"Retry-After": "7"}
    return server


async def test_every_worker_loading_is_relayed_with_its_retry_after(aiohttp_server, tmp_path):
    a, b = await _loading(aiohttp_server), await _loading(aiohttp_server)
    async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                          workers=f"{url_of(a)},{url_of(b)}") as r:
        async with run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                              bind="127.0.0.1", routers=r["router"], api_key="k") as e:
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as s:
                for base in (r["router"], e["edge"]):
                    async with s.post(base + "/v1/chat/completions",
                                      json={"model": "big", "messages": MSG}) as resp:
                        body = await resp.json()
                        assert resp.status == 503, body
                        assert resp.headers["Retry-After"] == "7"
                        assert body["error"]["code"] == "model_loading"
                        assert body["error"]["progress"]["estimated_percent"] == 40
    # both were tried: a loading worker is no answer while another may serve
    assert len(a.app[KNOBS].requests) >= 1 and len(b.app[KNOBS].requests) >= 1


async def test_a_broken_worker_beside_a_loading_one_is_the_usual_503(aiohttp_server, tmp_path):
    a = await _loading(aiohttp_server)
    b = await aiohttp_server(openai_server.make_app())
    b.app[KNOBS].models = ["big"]
    b.app[KNOBS].fail_status, b.app[KNOBS].fail_body = 500, b'{"error": {"message": "boom"}}'
    async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                          workers=f"{url_of(a)},{url_of(b)}") as r:
        async with aiohttp.ClientSession() as s:
            async with s.post(r["router"] + "/v1/chat/completions",
                              json={"model": "big", "messages": MSG}) as resp:
                body = await resp.json()
                assert resp.status == 503
                assert body["error"]["code"] == "upstream_unavailable"
                assert "Retry-After" not in resp.headers


async def test_a_rate_limited_backend_reaches_the_client_as_a_429(aiohttp_server, tmp_path):
    """The cloud worker: every backend listing the model said 429 with Retry-After."""
    a = await _loading(aiohttp_server, status=429)
    async with run_eldric("cloud", tmp_path / "c", port=0, bind="127.0.0.1",
                          backends=f"only:{url_of(a)}/v1") as c:
        async with aiohttp.ClientSession() as s:
            async with s.post(c["cloud"] + "/v1/chat/completions",
                              json={"model": "big", "messages": MSG}) as resp:
                assert resp.status == 429 and resp.headers["Retry-After"] == "7"
