"""Vertex AI behind the cloud role, end to end with the openai SDK: Gemini and Claude on
Vertex, the service account's token fetched by the real google-auth from the fake token
endpoint its key file names (tests/fakes/vertex.py)."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from eldric.backends import auth_google
from tests.backends.gemini_harness import TOOLS, cloud, leave_mid_stream, sse_events
from tests.conftest import url_of
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import gemini as fake_gemini
from tests.fakes import vertex as fake

CLAUDE = "claude-sonnet-4-5@20250929"


@pytest.fixture
async def vertex(aiohttp_server, tmp_path):
    knobs = fake.Knobs()
    server = await aiohttp_server(fake.app(knobs))
    key = fake.service_account(knobs, url_of(server), tmp_path / "sa.json")
    return server, knobs, key


def backend(server, key, name: str = "vx", priority: int = 100, **options) -> dict:
    return {"name": name, "type": "vertex", "url": url_of(server), "priority": priority,
            "options": {
        "project": fake.PROJECT, "location": "us-east5", "credentials": str(key),
        "models": [fake_gemini.MODEL, CLAUDE], **options}}


async def test_gemini_and_claude_on_vertex(vertex, tmp_path):
    server, knobs, key = vertex
    async with cloud(tmp_path, [backend(server, key)]) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused")
        assert {m.id async for m in client.models.list()} == {fake_gemini.MODEL, CLAUDE}
        probe = knobs.requests[0]
        assert probe["path"] == f"/v1/projects/{fake.PROJECT}/locations/us-east5"
        assert knobs.grants == 1  # the probe's token, reused below

        reply = await client.chat.completions.create(
            model=fake_gemini.MODEL, messages=[{"role": "user", "content": "text"}])
        assert reply.choices[0].message.content == "".join(fake_gemini.TEXT_CHUNKS)
        base = f"/v1/projects/{fake.PROJECT}/locations/us-east5/publishers"
        assert knobs.requests[-1]["path"] == f"{base}/google/models/{fake_gemini.MODEL}:generateContent"
        assert knobs.requests[-1]["headers"]["Authorization"].startswith("Bearer ya29.fake-")

        stream = await client.chat.completions.create(
            model=fake_gemini.MODEL, messages=[{"role": "user", "content": "tools"}],
            tools=TOOLS, stream=True)
        names = [t.function.name async for chunk in stream for c in chunk.choices
                 for t in c.delta.tool_calls or []]
        assert names == ["get_weather", "get_weather"]

        reply = await client.chat.completions.create(
            model=CLAUDE, messages=[{"role": "system", "content": "be brief"},
                                    {"role": "user", "content": "text"}])
        assert reply.choices[0].message.content == "Hello! How can I help?"
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (25, 15)
        sent = knobs.requests[-1]
        assert sent["path"] == f"{base}/anthropic/models/{CLAUDE}:rawPredict"
        assert sent["body"]["anthropic_version"] == "vertex-2023-10-16"
        assert "model" not in sent["body"] and sent["body"]["system"] == "be brief"

        stream = await client.chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": "tools"}], tools=TOOLS,
            stream=True, stream_options={"include_usage": True})
        args: dict[int, str] = {}
        finish = usage = None
        async for chunk in stream:
            usage = chunk.usage or usage
            for c in chunk.choices:
                finish = c.finish_reason or finish
                for t in c.delta.tool_calls or []:
                    args[t.index] = args.get(t.index, "") + (t.function.arguments or "")
        assert finish == "tool_calls" and [json.loads(a) for a in args.values()] == [
            {"location": "San Francisco, CA", "unit": "fahrenheit"}, {"location": "Paris"}]
        assert usage.completion_tokens == 89
        assert knobs.requests[-1]["path"].endswith(":streamRawPredict")
        assert knobs.grants == 1
        await client.close()


async def test_expired_token_is_renewed_and_refused_key_fails_over(vertex, aiohttp_server,
                                                                   tmp_path):
    server, knobs, key = vertex
    backup = await aiohttp_server(fake_gemini.app())
    async with cloud(tmp_path, [backend(server, key, priority=1),
                                {"name": "g", "type": "gemini", "url": url_of(backup),
                                 "api_key": fake_gemini.API_KEY, "priority": 2}]) as url:
        body = {"model": fake_gemini.MODEL, "messages": [{"role": "user", "content": "x"}]}
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "vx"
            # the token expired (a process that slept past it): the next request waits
            # for a new one, from the same key
            issued = knobs.grants
            source = auth_google.source(_Reach(str(key)))
            assert source is not None
            source.expires = 0
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "vx"
            assert knobs.grants == issued + 1
            # the key is refused at the token endpoint: the backup serves
            source.expires = 0
            knobs.refuse_grants = True
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "g"
            # a token Vertex no longer takes (revoked): 401, the backup serves
            knobs.refuse_grants = False
            await auth_google.ready(_Reach(str(key)))
            knobs.tokens.clear()
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "g"


class _Reach:
    """Just enough of a backend for auth_google to find its key's token source."""

    def __init__(self, key: str) -> None:
        self.options = {"credentials": key}


async def test_vertex_errors_429_failover_cut_and_client_leaving(vertex, aiohttp_server,
                                                                 tmp_path):
    server, knobs, key = vertex
    async with cloud(tmp_path, [backend(server, key)]) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError) as exc:  # the model's own 400
            await client.chat.completions.create(model=CLAUDE, temperature=1.5,
                                                 messages=[{"role": "user", "content": "x"}])
        assert exc.value.body["param"] == "temperature"  # refused by eldric, as Anthropic would
        knobs.scenario = "quota"
        with pytest.raises(openai.APIStatusError) as exc:
            await client.chat.completions.create(model=CLAUDE, messages=[
                {"role": "user", "content": "x"}])
        assert "quota" in exc.value.message
        knobs.scenario = None
        status, events = await sse_events(url + "/v1/chat/completions", {
            "model": fake_gemini.MODEL, "stream": True,
            "messages": [{"role": "user", "content": "cut"}]})
        assert status == 200 and "error" in events[-1] and "[DONE]" not in events
        status, events = await sse_events(url + "/v1/chat/completions", {
            "model": CLAUDE, "stream": True,
            "messages": [{"role": "user", "content": "error_midstream"}]})
        assert status == 200 and events[-1]["error"]["code"] == "upstream_overloaded"
        await leave_mid_stream(client, fake_gemini.MODEL, knobs)
        await client.close()
    assert fake_anthropic.MODEL  # the Claude transcripts are the fake Anthropic's



async def test_a_stalled_token_endpoint_is_a_timely_failure(vertex, tmp_path):
    """The token expired and the key's token_uri now takes the request and never answers
    (google-auth's own timeout is 120 s): the request fails within the connect timeout,
    as a backend that does not answer would, instead of hanging."""
    import asyncio
    import time

    server, knobs, key = vertex
    knobs.expires_in = 2  # the first token is good for the probe only
    cfg = tmp_path / "cloud.json"
    cfg.write_text(json.dumps({"cloud": {"port": 0, "bind_address": "127.0.0.1",
                                         "connect_timeout_ms": 500,
                                         "backends": [backend(server, key)]}}))
    from eldric import config, registry
    from tests.backends.harness import listed
    from tests.conftest import serving
    role = registry.load("cloud")
    loaded = config.load({"cloud": (role.config, role.defaults())}, str(cfg), {},
                         {"process.data_dir": (None, str(tmp_path / "d"))})
    async with serving([role], loaded) as found, aiohttp.ClientSession() as s:
        url = found["cloud"]
        await listed(url, fake_gemini.MODEL)
        knobs.stall_grants = True
        await asyncio.sleep(2.2)  # expired: the next request must wait for a new one
        t0 = time.monotonic()
        async with s.post(url + "/v1/chat/completions", json={
                "model": fake_gemini.MODEL, "messages": [{"role": "user", "content": "hi"}]},
                timeout=aiohttp.ClientTimeout(total=15)) as r:
            took = time.monotonic() - t0
            knobs.stall_grants = False
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "upstream_unavailable"
        assert took < 3
