"""/v1/messages on the cloud worker, with the official anthropic SDK: relayed as it is to
an Anthropic backend (the fake Anthropic: its key and the client's anthropic-version,
the reply and the stream byte for byte), translated for an OpenAI-compatible provider (the
fake vLLM-shaped server), count_tokens by each, and errors as the SDK's exceptions."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest

from tests.conftest import run_cloud, url_of
from tests.fakes import anthropic as fake
from tests.fakes import openai_server
from tests.wire.anthropic_sdk import parsed

HI = [{"role": "user", "content": "text"}]
WEATHER = {"name": "get_weather", "input_schema": {
    "type": "object", "properties": {"location": {"type": "string"}}}}


def claude_at(url: str, **kw) -> anthropic.AsyncAnthropic:  # type: ignore[no-untyped-def]
    return anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0, **kw)


async def test_anthropic_backend_relayed_as_it_is(anthropic_server, tmp_path):
    knobs = anthropic_server.app[fake.KNOBS]
    async with run_cloud(tmp_path, f"anthropic:{url_of(anthropic_server)}:{fake.API_KEY}") as u:
        # a client of an API version eldric does not know of (its body is written for it)
        async with claude_at(u["cloud"], default_headers={"anthropic-version": "2099-01-01"}
                             ) as claude:
            raw = await claude.messages.with_raw_response.create(model=fake.MODEL, max_tokens=32,
                                                                 messages=HI)
            assert json.loads(raw.http_response.content) == {  # the backend's reply itself
                **fake.MESSAGES["text"], "model": fake.MODEL}
            assert (await parsed(raw)).content[0].text == "Hello! How can I help?"
            sent = knobs.requests[-1]
            assert sent["path"] == "/v1/messages" and sent["body"] == {
                "model": fake.MODEL, "max_tokens": 32, "messages": HI}
            assert sent["headers"]["x-api-key"] == fake.API_KEY  # the backend's, not the client's
            assert sent["headers"]["anthropic-version"] == "2099-01-01"  # the client's own
            # backend/model picks the backend and is sent as the model alone
            await claude.messages.create(model=f"anthropic/{fake.MODEL}", max_tokens=8,
                                         messages=HI)
            assert knobs.requests[-1]["body"]["model"] == fake.MODEL
            async with claude.messages.stream(model=fake.MODEL, max_tokens=32,
                                              messages=[{"role": "user", "content": "tools"}]
                                              ) as s:
                final = await s.get_final_message()
            assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
            raw = await claude.messages.with_raw_response.count_tokens(
                model=fake.MODEL, messages=[{"role": "user", "content": "one two"}])
            assert (await parsed(raw)).input_tokens == 5 and "X-Eldric-Estimate" not in raw.headers
        body = {"model": fake.MODEL, "max_tokens": 8, "stream": True, "messages": HI}
        async with aiohttp.ClientSession() as s:  # the stream, byte for byte
            async with s.post(u["cloud"] + "/v1/messages", json=body,
                              headers={"anthropic-version": "2023-06-01"}) as r:
                assert await r.read() == fake.TEXT_SSE
        assert knobs.requests[-1]["headers"]["anthropic-version"] == "2023-06-01"
        async with aiohttp.ClientSession() as s:  # no version: eldric sends its own
            async with s.post(u["cloud"] + "/v1/messages", json={**body, "stream": False}) as r:
                assert r.status == 200
        assert knobs.requests[-1]["headers"]["anthropic-version"] == "2023-06-01"
        async with aiohttp.ClientSession() as s:
            async with s.get(u["cloud"] + "/metrics") as r:
                metrics = await r.text()
    # usage counted from the relayed replies too (Anthropic's usage fields)
    series = f'eldric_cloud_tokens_total{{backend="anthropic",kind="completion",model="{fake.MODEL}"}}'
    assert float(metrics.split(series)[1].split()[0]) > 0


async def test_anthropic_backend_errors(anthropic_server, tmp_path):
    async with run_cloud(tmp_path, f"anthropic:{url_of(anthropic_server)}:{fake.API_KEY}") as u:
        async with claude_at(u["cloud"]) as claude:
            with pytest.raises(anthropic.NotFoundError) as e:
                await claude.messages.create(model="nope", max_tokens=8, messages=HI)
            assert e.value.body["error"]["code"] == "model_not_found"
            with pytest.raises(anthropic.APIStatusError) as e:  # Anthropic's 529
                await claude.messages.create(model=fake.MODEL, max_tokens=8,
                                             messages=[{"role": "user", "content": "overloaded"}])
            assert e.value.status_code >= 500 and e.value.body["type"] == "error"


async def test_openai_compatible_provider_translated(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[openai_server.KNOBS]
    model = openai_server.MODELS[0]
    async with run_cloud(tmp_path, f"local:{url_of(fake_openai_server)}/v1") as u:
        async with claude_at(u["cloud"]) as claude:
            msg = await claude.messages.create(model=model, max_tokens=32, system="Be brief.",
                                               messages=HI)
            assert msg.content[0].text and msg.stop_reason == "end_turn"
            assert msg.usage.output_tokens == knobs.tokens
            chat = json.loads(knobs.requests[-1]["body"])
            assert knobs.requests[-1]["path"] == "/v1/chat/completions"
            assert chat["messages"][0] == {"role": "system", "content": "Be brief."}
            async with claude.messages.stream(model=model, max_tokens=32, messages=HI) as s:
                text = "".join([t async for t in s.text_stream])
            assert text == msg.content[0].text
            knobs.tool_calls = [("call_9", "get_weather", '{"location": "Oslo"}')]
            used = await claude.messages.create(model=model, max_tokens=32, tools=[WEATHER],
                                                messages=HI)
            assert used.content[0].input == {"location": "Oslo"}
            raw = await claude.messages.with_raw_response.count_tokens(model=model, messages=HI)
            assert raw.headers["X-Eldric-Estimate"] == "true"
            assert (await parsed(raw)).input_tokens == 1  # "text": 4 characters
            with pytest.raises(anthropic.BadRequestError) as e:
                await claude.messages.create(model=model, max_tokens=0, messages=HI)
            assert e.value.body["error"]["param"] == "max_tokens"
