"""The Gemini API behind the cloud role, end to end with the openai SDK against the fake
(tests/fakes/gemini.py): chat whole and streamed, tools, thinking, embeddings, errors,
429 failover, a stream cut mid-way, a client leaving; the Messages and Responses APIs
translated onto it."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import openai
import pytest

from tests.backends.gemini_harness import TOOLS, cloud, leave_mid_stream, sse_events
from tests.conftest import url_of
from tests.fakes import gemini as fake


def backend(url: str, name: str = "g", key: str = fake.API_KEY, **extra) -> dict:
    return {"name": name, "type": "gemini", "url": url, "api_key": key, **extra}


@pytest.fixture
async def gemini(aiohttp_server):
    server = await aiohttp_server(fake.app())
    return server, server.app[fake.KNOBS]


async def test_chat_whole_streamed_tools_thinking_and_embeddings(gemini, tmp_path):
    server, knobs = gemini
    async with cloud(tmp_path, [backend(url_of(server))]) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused")
        models = [m.id async for m in client.models.list()]
        assert {"gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004"} <= set(models)
        assert knobs.requests[0]["query"] == "pageSize=1000"

        reply = await client.chat.completions.create(
            model=fake.MODEL, max_tokens=64,
            messages=[{"role": "system", "content": "be brief"},
                      {"role": "user", "content": "text"}])
        assert reply.choices[0].message.content == "".join(fake.TEXT_CHUNKS)
        assert reply.choices[0].finish_reason == "stop"
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (8, 7)
        sent = knobs.requests[-1]
        assert sent["path"] == f"/v1beta/models/{fake.MODEL}:generateContent"
        assert sent["headers"]["x-goog-api-key"] == fake.API_KEY
        assert sent["body"]["systemInstruction"] == {"parts": [{"text": "be brief"}]}
        assert sent["body"]["generationConfig"] == {"maxOutputTokens": 64}

        stream = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "thinking"}], stream=True,
            stream_options={"include_usage": True})
        text, reasoning, finish, usage = "", "", None, None
        async for chunk in stream:
            usage = chunk.usage or usage
            for c in chunk.choices:
                text += c.delta.content or ""
                reasoning += getattr(c.delta, "reasoning_content", None) or ""
                finish = c.finish_reason or finish
        assert text == "".join(fake.TEXT_CHUNKS) and reasoning == "Recalling capitals."
        assert finish == "stop" and usage.completion_tokens == 7 + 4
        assert knobs.requests[-1]["query"] == "alt=sse"

        # tools: two parallel calls, whole, then answered and streamed again
        reply = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS)
        calls = reply.choices[0].message.tool_calls
        assert reply.choices[0].finish_reason == "tool_calls"
        assert [json.loads(c.function.arguments) for c in calls] == [a["args"] for a in fake.CALLS]
        history = [{"role": "user", "content": "weather?"},
                   reply.choices[0].message.model_dump(exclude_none=True),
                   *({"role": "tool", "tool_call_id": c.id, "content": '{"temp": 20}'}
                     for c in calls)]
        again = await client.chat.completions.create(model=fake.MODEL, messages=history,
                                                     tools=TOOLS)
        assert again.choices[0].message.content == "".join(fake.TEXT_CHUNKS)
        model_turn = knobs.requests[-1]["body"]["contents"][1]
        # the first call's thoughtSignature went back with it (the fake refuses it missing)
        assert model_turn["parts"][0]["thoughtSignature"] == fake.SIGNATURE
        stream = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "tools"}], tools=TOOLS,
            stream=True)
        names = [call.function.name async for chunk in stream for c in chunk.choices
                 for call in c.delta.tool_calls or []]
        assert names == ["get_weather", "get_weather"]

        png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
        reply = await client.chat.completions.create(model=fake.MODEL, messages=[
            {"role": "user", "content": [
                {"type": "text", "text": "what are these?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.webp"}}]}])
        assert reply.choices[0].message.content
        parts = knobs.requests[-1]["body"]["contents"][0]["parts"]
        assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": png}}
        assert parts[2] == {"fileData": {"fileUri": "https://example.com/a.webp",
                                         "mimeType": "image/webp"}}

        emb = await client.embeddings.create(model="text-embedding-004", input=["a", "bc"],
                                             dimensions=3)
        assert [len(d.embedding) for d in emb.data] == [3, 3]
        assert knobs.requests[-1]["path"].endswith("text-embedding-004:batchEmbedContents")
        await client.close()
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
            metrics = await r.text()
    assert f'eldric_cloud_requests_total{{backend="g",model="{fake.MODEL}"}}' in metrics


async def test_bad_bodies_and_api_errors_are_the_clients_400(gemini, tmp_path):
    server, knobs = gemini
    async with cloud(tmp_path, [backend(url_of(server))]) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        sent = len(knobs.requests)
        with pytest.raises(openai.BadRequestError) as exc:  # eldric refuses it: nothing sent
            await client.chat.completions.create(model=fake.MODEL, messages=[
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}])
        assert exc.value.body["param"] == "messages[0].content[0]"
        assert len(knobs.requests) == sent
        with pytest.raises(openai.BadRequestError) as exc:  # Gemini refuses it
            await client.chat.completions.create(model=fake.MODEL, messages=[
                {"role": "user", "content": "bad"}])
        assert exc.value.body["code"] == "invalid_request"
        await client.close()


async def test_refused_key_is_a_502_and_backend_down_a_503(gemini, tmp_path):
    server, knobs = gemini
    async with cloud(tmp_path, [backend(url_of(server))]) as url:
        body = {"model": fake.MODEL, "messages": [{"role": "user", "content": "x"}]}
        async with aiohttp.ClientSession() as s:
            knobs.api_key = "AIzaRotated"  # Gemini now answers 400 API_KEY_INVALID
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                err = (await r.json())["error"]
            # not the client's 400 (nor a 401): the backend's failure, retried elsewhere,
            # and with nobody else the cloud's "every backend failed"
            assert r.status == 503 and err["code"] == "upstream_unavailable"
            assert "refused its" in err["message"]
            # Google's way of refusing a key (400 API_KEY_INVALID) is a refused key like
            # a 401/403: the backend shows auth_failed
            async with s.get(url + "/api/v1/backends") as r:
                listed = await r.json()
            assert [b["auth_failed"] for b in listed["backends"]] == [True]
            await server.close()
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                assert r.status == 503
                assert (await r.json())["error"]["code"] == "upstream_unavailable"


async def test_429_fails_over_to_the_next_backend(aiohttp_server, tmp_path):
    first, second = await aiohttp_server(fake.app()), await aiohttp_server(fake.app())
    first.app[fake.KNOBS].scenario = "quota"
    async with cloud(tmp_path, [backend(url_of(first), "g1", priority=1),
                                backend(url_of(second), "g2", priority=2)]) as url:
        async with aiohttp.ClientSession() as s:
            for stream in (False, True):
                async with s.post(url + "/v1/chat/completions", json={
                        "model": fake.MODEL, "stream": stream,
                        "messages": [{"role": "user", "content": "x"}]}) as r:
                    assert r.status == 200 and r.headers["X-Eldric-Backend"] == "g2"
                    await r.read()
            first_calls = [q for q in first.app[fake.KNOBS].requests if "Content" in q["path"]]
            assert len(first_calls) == 2
            second.app[fake.KNOBS].scenario = "overloaded"  # nobody left: the last status
            async with s.post(url + "/v1/chat/completions", json={
                    "model": fake.MODEL, "messages": [{"role": "user", "content": "x"}]}) as r:
                assert r.status == 503
                assert (await r.json())["error"]["code"] == "upstream_unavailable"
            second.app[fake.KNOBS].scenario = "quota"
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            # both said "come back later" (RetryInfo 18.3s): Google's 429, with Retry-After
            with pytest.raises(openai.RateLimitError) as exc:
                await client.chat.completions.create(model=fake.MODEL, messages=[
                    {"role": "user", "content": "x"}])
            assert exc.value.status_code == 429 and "quota" in exc.value.message
            assert exc.value.response.headers["Retry-After"] == "19"
            await client.close()


@pytest.mark.parametrize("scenario,code", [("cut", "upstream_error"),
                                           ("error_midstream", "upstream_unavailable")])
async def test_stream_broken_mid_way_ends_with_one_error_event(gemini, tmp_path, scenario, code):
    server, _ = gemini
    async with cloud(tmp_path, [backend(url_of(server))]) as url:
        status, events = await sse_events(url + "/v1/chat/completions", {
            "model": fake.MODEL, "stream": True,
            "messages": [{"role": "user", "content": scenario}]})
    assert status == 200
    assert events[0]["choices"][0]["delta"]["content"] == fake.TEXT_CHUNKS[0]
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert len(errors) == 1 and events[-1] is errors[0] and errors[0]["error"]["code"] == code
    assert "[DONE]" not in events


async def test_client_leaving_cancels_the_gemini_stream(gemini, tmp_path):
    server, knobs = gemini
    async with cloud(tmp_path, [backend(url_of(server))]) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused")
        await leave_mid_stream(client, fake.MODEL, knobs)
        await client.close()


async def test_translated_client_apis_reach_gemini(gemini, tmp_path):
    """A Messages client (the anthropic SDK) and a Responses client: their requests are
    turned into chat by their translators, then into generateContent by the adapter."""
    server, knobs = gemini
    async with cloud(tmp_path, [backend(url_of(server))]) as url:
        claude = anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0)
        msg = await claude.messages.create(model=fake.MODEL, max_tokens=50, messages=[
            {"role": "user", "content": "text"}])
        assert msg.content[0].text == "".join(fake.TEXT_CHUNKS)
        assert msg.stop_reason == "end_turn"
        assert knobs.requests[-1]["body"]["generationConfig"]["maxOutputTokens"] == 50
        async with claude.messages.stream(model=fake.MODEL, max_tokens=50, messages=[
                {"role": "user", "content": "tools"}], tools=[{
                    "name": "get_weather", "input_schema": {"type": "object"}}]) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "tool_use"
        assert [b.input for b in final.content if b.type == "tool_use"] == [
            c["args"] for c in fake.CALLS]
        await claude.close()
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        resp = await client.responses.create(model=fake.MODEL, input="text")
        assert resp.output_text == "".join(fake.TEXT_CHUNKS)
        await client.close()


async def test_an_error_as_the_streams_first_event_fails_over(aiohttp_server, tmp_path):
    """Gemini answered 200 and its stream's first event is an error (UNAVAILABLE):
    nothing reached the client, so it is the 503 it stands for, tried elsewhere."""
    first, second = await aiohttp_server(fake.app()), await aiohttp_server(fake.app())
    first.app[fake.KNOBS].scenario = "error_first"
    async with cloud(tmp_path, [backend(url_of(first), "g1", priority=1),
                                backend(url_of(second), "g2", priority=2)]) as url:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions", json={
                    "model": fake.MODEL, "stream": True,
                    "messages": [{"role": "user", "content": "x"}]}) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "g2"
                assert b"error" not in await r.read()
            second.app[fake.KNOBS].scenario = "error_first"  # nobody left: eldric's 503
            async with s.post(url + "/v1/chat/completions", json={
                    "model": fake.MODEL, "stream": True,
                    "messages": [{"role": "user", "content": "x"}]}) as r:
                assert r.status == 503
                assert (await r.json())["error"]["code"] == "upstream_unavailable"
