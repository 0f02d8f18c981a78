"""The `ollama` client against the cloud worker in front of Anthropic (the fake): Ollama's
chat and generate translated to chat, chat to Messages and back, directly and through a
router; a backend failing mid-stream ends the NDJSON in an error line; what has no
Messages counterpart (embeddings, a raw prompt) refused in Ollama's shape; a backend
failing before the first byte hands the request to the next; /health says what is served."""

from __future__ import annotations

import aiohttp
import ollama
import pytest

from tests.conftest import run_cloud, run_eldric, url_of
from tests.fakes import anthropic as fake
from tests.fakes import openai_server
from tests.roles.ollama_hops import client

TEXT = "Hello! How can I help?"
HI = [{"role": "user", "content": "text"}]


def claude(server) -> str:  # type: ignore[no-untyped-def]
    return f"anthropic:{url_of(server)}:{fake.API_KEY}"


async def test_chat_and_generate_directly_and_through_a_router(anthropic_server, tmp_path):
    knobs = anthropic_server.app[fake.KNOBS]
    async with run_cloud(tmp_path / "c", claude(anthropic_server)) as c, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=c["cloud"]) as r:
        for hop, url in (("cloud", c["cloud"]), ("router", r["router"])):
            oc = client(url)
            reply = await oc.chat(fake.MODEL, HI, options={"num_predict": 50,
                                                           "temperature": 0})
            assert (reply.message.content, reply.done_reason) == (TEXT, "stop"), hop
            assert (reply.prompt_eval_count, reply.eval_count) == (25, 15)
            assert knobs.requests[-1]["body"] == {
                "model": fake.MODEL, "max_tokens": 50, "messages": HI, "temperature": 0,
                "stream": False}
            parts = [p async for p in await oc.chat(fake.MODEL, HI, stream=True)]
            assert "".join(p.message.content for p in parts) == TEXT
            assert parts[-1].done and parts[-1].eval_count == 15
            assert knobs.requests[-1]["body"]["stream"] is True
            got = await oc.generate(fake.MODEL, "text", system="be brief")
            assert got.response == TEXT
            assert knobs.requests[-1]["body"]["system"] == "be brief"
            # two parallel tool calls, their streamed input joined
            parts = [p async for p in await oc.chat(
                fake.MODEL, [{"role": "user", "content": "tools"}], stream=True,
                tools=[{"type": "function", "function": {"name": "get_weather"}}])]
            calls = [t.function for p in parts for t in p.message.tool_calls or ()]
            assert [(f.name, dict(f.arguments)) for f in calls] == [
                ("get_weather", {"location": "San Francisco, CA", "unit": "fahrenheit"}),
                ("get_weather", {"location": "Paris"})]
            with pytest.raises(ollama.ResponseError) as err:
                await oc.chat("no-such-model", HI)
            assert err.value.status_code == 404
        async with aiohttp.ClientSession() as s:
            async with s.get(c["cloud"] + "/metrics") as resp:
                metrics = await resp.text()
    # the usage of every reply counted, streamed ones too: per hop 15 * 3 (text) + 89 (tools)
    series = f'eldric_cloud_tokens_total{{backend="anthropic",kind="completion",model="{fake.MODEL}"}}'
    assert float(metrics.split(series)[1].split()[0]) == 2 * (15 * 3 + 89)


@pytest.mark.parametrize("failure", ["error_event", "connection_lost"])
async def test_a_backend_failing_mid_stream_ends_in_an_error_line(anthropic_server, tmp_path,
                                                                   failure):
    knobs = anthropic_server.app[fake.KNOBS]
    if failure == "connection_lost":
        knobs.die_after = 4  # after message_start, the block's start, a ping, "Hello"
    ask = "text" if failure == "connection_lost" else "error_midstream"
    async with run_cloud(tmp_path, claude(anthropic_server)) as c:
        got = []
        with pytest.raises(ollama.ResponseError):
            async for part in await client(c["cloud"]).chat(
                    fake.MODEL, [{"role": "user", "content": ask}], stream=True):
                got.append(part.message.content)
        assert "".join(got) == ("Hello" if failure == "connection_lost" else "Par")
        async with aiohttp.ClientSession() as s:  # the last line is Ollama's error
            async with s.post(c["cloud"] + "/api/chat", json={
                    "model": fake.MODEL, "messages": [{"role": "user", "content": ask}]}) as r:
                assert r.headers["Content-Type"] == "application/x-ndjson"
                last = (await r.read()).splitlines()[-1]
        assert last.startswith(b'{"error":') and b'"done"' not in last


async def test_what_anthropic_has_no_counterpart_for_is_refused(anthropic_server, tmp_path):
    async with run_cloud(tmp_path, claude(anthropic_server)) as c, \
            aiohttp.ClientSession() as s:
        for path, body in (("/api/embed", {"model": fake.MODEL, "input": "x"}),
                           ("/api/embeddings", {"model": fake.MODEL, "prompt": "x"}),
                           ("/api/generate", {"model": fake.MODEL, "prompt": "x", "raw": True,
                                              "stream": False})):
            async with s.post(c["cloud"] + path, json=body) as r:
                err = await r.json()
            assert r.status == 400 and set(err) == {"error", "code"}, path  # Ollama's shape
            assert err["code"] == "invalid_request" and "/v1/messages" in err["error"]
        assert anthropic_server.app[fake.KNOBS].requests == []
        async with s.get(c["cloud"] + "/health") as r:  # exactly what it serves
            assert (await r.json())["paths"] == [
                "/v1/chat/completions", "/v1/messages", "/v1/responses", "/api/chat",
                "/api/generate", "/api/show"]


async def test_overloaded_fails_over_before_the_first_byte(anthropic_server, aiohttp_server,
                                                           tmp_path):
    backup = await aiohttp_server(openai_server.make_app())
    backup.app[openai_server.KNOBS].models = [fake.MODEL]
    overloaded = [{"role": "user", "content": "overloaded"}]
    async with run_cloud(tmp_path / "a", claude(anthropic_server)) as alone, \
            run_cloud(tmp_path / "b", f"{claude(anthropic_server)},"
                                      f"backup:{url_of(backup)}/v1") as both, \
            aiohttp.ClientSession() as s:
        for stream in (False, True):
            async with s.post(both["cloud"] + "/api/chat", json={
                    "model": fake.MODEL, "messages": overloaded, "stream": stream}) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "backup"
                assert b" w4" in await r.read()  # the backup's last word
        async with s.post(alone["cloud"] + "/api/chat", json={
                "model": fake.MODEL, "messages": overloaded}) as r:
            err = await r.json()
        assert r.status == 503 and err["code"] == "upstream_unavailable"  # Ollama's shape
