"""Gemini and Vertex AI behind the worker role (`--backend gemini|vertex`), end to end
with the openai SDK against the fakes: what a client of a worker sees, errors in the
worker's own terms (no failover: the router's job), a cut stream, a client leaving."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from tests.backends.gemini_harness import TOOLS, leave_mid_stream, sse_events
from tests.conftest import run_eldric, until, url_of
from tests.fakes import gemini as fake
from tests.fakes import vertex as fake_vertex


def worker(tmp_path, kind: str, url: str, **flags):  # type: ignore[no-untyped-def]
    return run_eldric("worker", tmp_path, backend=kind, backend_url=url, port=0,
                      bind="127.0.0.1", **flags)


async def _listed(url: str) -> bool:
    async with aiohttp.ClientSession() as s, s.get(url + "/v1/models") as r:
        return r.status == 200 and bool((await r.json())["data"])


async def test_gemini_worker_chat_tools_embeddings_errors(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake.app())
    knobs = server.app[fake.KNOBS]
    async with worker(tmp_path, "gemini", url_of(server), backend_api_key=fake.API_KEY) as urls:
        url = urls["worker"]
        await until(lambda: _listed(url), timeout=10)
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        assert fake.MODEL in {m.id async for m in client.models.list()}
        reply = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "text"}])
        assert reply.choices[0].message.content == "".join(fake.TEXT_CHUNKS)
        assert knobs.requests[-1]["headers"]["x-goog-api-key"] == fake.API_KEY
        stream = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "weather"}], tools=TOOLS,
            stream=True, stream_options={"include_usage": True})
        calls, usage = [], None
        async for chunk in stream:
            usage = chunk.usage or usage
            calls += [t for c in chunk.choices for t in c.delta.tool_calls or []]
        assert [json.loads(t.function.arguments) for t in calls] == [c["args"] for c in fake.CALLS]
        assert usage.completion_tokens == 20
        emb = await client.embeddings.create(model="text-embedding-004", input="hello")
        assert len(emb.data[0].embedding) == 4

        knobs.scenario = "quota"  # the worker answers the backend's 429 as it is mapped
        with pytest.raises(openai.RateLimitError) as exc:
            await client.chat.completions.create(model=fake.MODEL, messages=[
                {"role": "user", "content": "x"}])
        assert exc.value.body["code"] == "rate_limit_exceeded"
        knobs.scenario = "overloaded"
        with pytest.raises(openai.InternalServerError) as exc:
            await client.chat.completions.create(model=fake.MODEL, messages=[
                {"role": "user", "content": "x"}])
        assert exc.value.status_code == 503
        knobs.scenario = None
        with pytest.raises(openai.BadRequestError) as exc:
            await client.chat.completions.create(model=fake.MODEL, messages=[
                {"role": "user", "content": "bad"}])
        assert exc.value.body["code"] == "invalid_request"

        status, events = await sse_events(url + "/v1/chat/completions", {
            "model": fake.MODEL, "stream": True, "messages": [{"role": "user", "content": "cut"}]})
        errors = [e for e in events if isinstance(e, dict) and "error" in e]
        assert status == 200 and len(errors) == 1 and events[-1] is errors[0]

        await leave_mid_stream(client, fake.MODEL, knobs)

        knobs.api_key = "AIzaRotated"
        async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json={
                "model": fake.MODEL, "messages": [{"role": "user", "content": "x"}]}) as r:
            # Google's 400 API_KEY_INVALID is a refused key, as its 401/403 are: the
            # worker's 502 backend_auth_failed (its backend stays in rotation)
            err = (await r.json())["error"]
            assert r.status == 502 and err["code"] == "backend_auth_failed"
            assert "refused its API key" in err["message"]
        await client.close()


async def test_vertex_worker_gemini_and_claude(aiohttp_server, tmp_path):
    knobs = fake_vertex.Knobs()
    server = await aiohttp_server(fake_vertex.app(knobs))
    key = fake_vertex.service_account(knobs, url_of(server), tmp_path / "sa.json")
    options = {"project": fake_vertex.PROJECT, "credentials": str(key),
               "models": [fake.MODEL, "claude-sonnet-4-5@20250929"]}
    async with worker(tmp_path, "vertex", url_of(server),
                      backend_options=json.dumps(options)) as urls:
        url = urls["worker"]
        await until(lambda: _listed(url), timeout=10)
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        assert {m.id async for m in client.models.list()} >= set(options["models"])
        for model, want in ((fake.MODEL, "".join(fake.TEXT_CHUNKS)),
                            ("claude-sonnet-4-5@20250929", "Hello! How can I help?")):
            reply = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "text"}])
            assert reply.choices[0].message.content == want
            stream = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "text"}], stream=True)
            assert "".join([c.choices[0].delta.content or "" async for c in stream
                            if c.choices]) == want
        paths = [r["path"] for r in knobs.requests]
        assert paths[0] == f"/v1/projects/{fake_vertex.PROJECT}/locations/global"
        assert any(p.endswith(":streamRawPredict") for p in paths)
        assert any(p.endswith(":streamGenerateContent") for p in paths)
        assert knobs.grants == 1
        await client.close()
