"""A backend's 429 through the cloud role, the same whatever its kind: an OpenAI-
compatible backend's and a native one's (Gemini, Cohere) give the client the same status
and Retry-After when it is the only backend (eldric.stream.failover: "come back later" is
relayed as sent when every attempt said so). Google says when in the body (a
google.rpc.RetryInfo detail, no header): eldric turns it into Retry-After."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from tests.backends import harness
from tests.conftest import url_of
from tests.fakes import cohere as cohere_fake
from tests.fakes import gemini as gemini_fake


def _openai_429(retry_after: str | None) -> web.Application:
    async def chat(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"message": "Rate limit reached", "type": "requests",
                       "code": "rate_limit_exceeded", "param": None}}, status=429,
            headers={"Retry-After": retry_after} if retry_after else None)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": "m", "object": "model", "created": 0, "owned_by": "x"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


async def _ask(url: str, model: str) -> tuple[int, str | None, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/chat/completions", json={
                "model": model, "messages": [{"role": "user", "content": "x"}]}) as r:
            return r.status, r.headers.get("Retry-After"), await r.json()


async def _only(tmp_path, spec: dict, model: str) -> tuple[int, str | None, dict]:
    async with harness.cloud(tmp_path, [spec]) as url:
        await harness.listed(url, model)
        return await _ask(url, model)


async def test_openai_compatible_429_with_retry_after_is_relayed(tmp_path, aiohttp_server):
    server = await aiohttp_server(_openai_429("7"))
    status, after, body = await _only(tmp_path, {
        "name": "o", "type": "openai_compatible", "url": url_of(server) + "/v1",
        "api_key": "k"}, "m")
    assert (status, after) == (429, "7") and body["error"]["code"] == "rate_limit_exceeded"


async def test_gemini_quota_429_is_relayed_with_its_retry_delay(tmp_path, aiohttp_server):
    server = await aiohttp_server(gemini_fake.app())
    server.app[gemini_fake.KNOBS].scenario = "quota"
    status, after, body = await _only(tmp_path, {
        "name": "g", "type": "gemini", "url": url_of(server), "api_key": gemini_fake.API_KEY},
        gemini_fake.MODEL)
    # RetryInfo.retryDelay "18.3s" -> Retry-After: 19 (whole seconds, rounded up)
    assert (status, after) == (429, "19") and body["error"]["code"] == "rate_limit_exceeded"
    assert "quota" in body["error"]["message"]


@pytest.mark.parametrize("retry_after", ["5", None])
async def test_cohere_429_is_the_same_as_an_openai_compatible_one(tmp_path, aiohttp_server,
                                                                 retry_after):
    server = await aiohttp_server(cohere_fake.make_app())
    knobs = server.app[cohere_fake.KNOBS]
    knobs.scenario = "ratelimited"
    knobs.retry_after = retry_after
    status, after, body = await _only(tmp_path, {
        "name": "co", "type": "cohere", "url": url_of(server), "api_key": cohere_fake.API_KEY},
        cohere_fake.CHAT_MODEL)
    oa = await aiohttp_server(_openai_429(retry_after))
    (tmp_path / "o").mkdir()
    o_status, o_after, _ = await _only(tmp_path / "o", {
        "name": "o", "type": "openai_compatible", "url": url_of(oa) + "/v1", "api_key": "k"},
        "m")
    assert (status, after) == (o_status, o_after) == ((429, "5") if retry_after else (503, None))


async def test_worker_relays_a_gemini_quota_429_with_its_retry_delay(tmp_path, aiohttp_server):
    server = await aiohttp_server(gemini_fake.app())
    server.app[gemini_fake.KNOBS].scenario = "quota"
    async with harness.worker(tmp_path, "gemini", url_of(server), gemini_fake.API_KEY) as url:
        await harness.listed(url, gemini_fake.MODEL)
        status, after, body = await _ask(url, gemini_fake.MODEL)
    assert (status, after) == (429, "19") and body["error"]["code"] == "rate_limit_exceeded"
