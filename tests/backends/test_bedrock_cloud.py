"""Bedrock (Converse / ConverseStream) behind the cloud role, end to end with the openai
SDK: the fake Bedrock recomputes every request's SigV4 signature with botocore."""

from __future__ import annotations

import json

import openai
import pytest

from eldric import registry
from tests.backends.aws_kit import CREDS, cloud, leave
from tests.conftest import run_role, until, url_of
from tests.fakes import aws_sigv4
from tests.fakes import bedrock as fake

pytest.importorskip("botocore")

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def bedrock_row(server, name: str = "aws", **options) -> dict:
    return {"name": name, "type": "bedrock", "url": url_of(server),
            "options": {**CREDS, **options}}


async def test_whole_streamed_and_tools_signed(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake.make_app())
    async with cloud(tmp_path, bedrock_row(server)) as (client, _):
        models = {m.id: m.owned_by async for m in client.models.list()}
        assert models == {fake.MODEL: "aws"}  # the TEXT models of ListFoundationModels
        reply = await client.chat.completions.create(
            model=fake.MODEL, max_tokens=50, temperature=0.2,
            messages=[{"role": "system", "content": "be brief"},
                      {"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from Bedrock."
        assert reply.choices[0].finish_reason == "stop"
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 7)
        sent = server.app[fake.KNOBS].requests[-1]
        assert sent["body"]["system"] == [{"text": "be brief"}]
        assert sent["body"]["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2}
        # the id's ":" sent as botocore sends it (%3A), signed over that (%253A)
        assert sent["raw_path"] == f"/model/{fake.MODEL.replace(':', '%3A')}/converse"
        assert sent["headers"]["Authorization"].startswith(
            f"AWS4-HMAC-SHA256 Credential={aws_sigv4.ACCESS_KEY}/")

        stream = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        text, finish, usage = "", None, None
        async for chunk in stream:
            usage = chunk.usage or usage
            for c in chunk.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
        assert (text, finish) == ("Hello from Bedrock.", "stop")
        assert usage is not None and usage.total_tokens == 19

        # tools, streamed: the toolUse block's input split mid-JSON, reassembled
        stream = await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "tools please"}],
            tools=TOOLS, stream=True)
        args, names, finish = "", [], None
        async for chunk in stream:
            for c in chunk.choices:
                finish = c.finish_reason or finish
                for call in c.delta.tool_calls or []:
                    names += [call.function.name] if call.function.name else []
                    args += call.function.arguments or ""
        assert names == ["get_weather"] and json.loads(args) == {"city": "Paris"}
        assert finish == "tool_calls"
        spec = server.app[fake.KNOBS].requests[-1]["body"]["toolConfig"]
        assert spec["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"] == ["city"]

        # the tool's result back: toolUse in the assistant turn, toolResult in a user one
        reply = await client.chat.completions.create(model=fake.MODEL, tools=TOOLS, messages=[
            {"role": "user", "content": "tools please"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "tooluse_abc123", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "tooluse_abc123", "content": "sunny"}])
        assert reply.choices[0].message.content == "Hello from Bedrock."
        msgs = server.app[fake.KNOBS].requests[-1]["body"]["messages"]
        assert msgs[1]["content"] == [{"toolUse": {"toolUseId": "tooluse_abc123",
                                                   "name": "get_weather",
                                                   "input": {"city": "Paris"}}}]
        assert msgs[2]["content"][0]["toolResult"]["content"] == [{"text": "sunny"}]


async def test_errors_mapped_and_throttling_fails_over(aiohttp_server, tmp_path):
    first = await aiohttp_server(fake.make_app())
    second = await aiohttp_server(fake.make_app())
    rows = [bedrock_row(first, "aws"), {**bedrock_row(second, "aws2"), "priority": 1}]
    async with cloud(tmp_path, *rows) as (client, _):
        # a bad body: eldric's own 400, in OpenAI's shape, nothing sent
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(model=fake.MODEL, messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {
                    "url": "data:image/tiff;base64,AAAA"}}]}])
        assert bad.value.status_code == 400 and bad.value.code == "invalid_request"
        assert first.app[fake.KNOBS].requests == second.app[fake.KNOBS].requests == []
        # Bedrock's 429 ThrottlingException and 503 on the backend tried first: the
        # other answers
        fakes = {"aws": first, "aws2": second}
        for status in (429, 503):
            raw = await client.chat.completions.with_raw_response.create(
                model=fake.MODEL, messages=[{"role": "user", "content": "hi"}])
            tried = raw.headers["X-Eldric-Backend"]
            fakes[tried].app[fake.KNOBS].fail_next.append(status)
            raw = await client.chat.completions.with_raw_response.create(
                model=fake.MODEL, messages=[{"role": "user", "content": "hi"}])
            assert fakes[tried].app[fake.KNOBS].fail_next == [], status  # it was tried
            assert raw.headers["X-Eldric-Backend"] != tried, status
            assert raw.parse().choices[0].message.content == "Hello from Bedrock."
        # throttled or unavailable everywhere: the cloud's 503 names each backend's
        # failure, Bedrock's message kept
        for said, why in (("throttle me", "Too many requests"), ("unavailable", "Bedrock is unable")):
            with pytest.raises(openai.InternalServerError) as down:
                await client.chat.completions.create(
                    model=fake.MODEL, messages=[{"role": "user", "content": said}])
            assert down.value.status_code == 503 and down.value.code == "upstream_unavailable"
            assert f"aws: {why}" in down.value.message and f"aws2: {why}" in down.value.message
        # Bedrock's own 400 (ValidationException) is the client's: no failover
        with pytest.raises(openai.BadRequestError) as invalid:
            await client.chat.completions.create(model=fake.MODEL, messages=[
                {"role": "assistant", "content": "I start"}, {"role": "user", "content": "hi"}])
        assert invalid.value.code == "invalid_request"
        assert "start with a user message" in invalid.value.message


async def test_a_stream_throttled_at_its_first_event_fails_over(aiohttp_server, tmp_path):
    """ConverseStream answered 200 and its first message is a throttlingException:
    nothing reached the client, so another backend answers, as for an HTTP 429."""
    first = await aiohttp_server(fake.make_app())
    second = await aiohttp_server(fake.make_app())
    rows = [bedrock_row(first, "aws"), {**bedrock_row(second, "aws2"), "priority": 1}]
    async with cloud(tmp_path, *rows) as (client, _):
        fakes = {"aws": first, "aws2": second}
        raw = await client.chat.completions.with_raw_response.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "hi"}])
        tried = raw.headers["X-Eldric-Backend"]
        fakes[tried].app[fake.KNOBS].stream_throttle = 1
        raw = await client.chat.completions.with_raw_response.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
        assert fakes[tried].app[fake.KNOBS].stream_throttle == 0  # it was tried
        assert raw.headers["X-Eldric-Backend"] != tried
        text = ""
        async for chunk in raw.parse():
            for c in chunk.choices:
                text += c.delta.content or ""
        assert text == "Hello from Bedrock."
        # throttled everywhere: the client's 429-or-503 before any byte, not an event
        with pytest.raises(openai.APIStatusError) as down:
            await client.chat.completions.create(
                model=fake.MODEL, messages=[{"role": "user", "content": "first-exception"}],
                stream=True)
        assert down.value.status_code in (429, 503)
        assert "Too many tokens" in down.value.message


async def test_mid_stream_exception_cut_and_bad_crc(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake.make_app())
    async with cloud(tmp_path, bedrock_row(server)) as (client, _):
        for said, code in (("exception", "rate_limit_exceeded"), ("cut", "upstream_error"),
                           ("crc", "upstream_error")):
            stream = await client.chat.completions.create(
                model=fake.MODEL, messages=[{"role": "user", "content": said}], stream=True)
            text = ""
            with pytest.raises(openai.APIError) as err:
                async for chunk in stream:
                    for c in chunk.choices:
                        text += c.delta.content or ""
            assert text == "Hello from", said  # what came before the failure was sent
            assert err.value.code == code, said


async def test_client_leaving_cancels_the_bedrock_stream(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake.make_app())
    async with cloud(tmp_path, bedrock_row(server)) as (client, _):
        await leave(await client.chat.completions.create(
            model=fake.MODEL, messages=[{"role": "user", "content": "slow"}], stream=True))
        await until(lambda: server.app[fake.KNOBS].cancelled == 1, timeout=10)


async def test_bearer_api_key_and_a_wrong_secret(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake.make_app())
    keyed = {"name": "keyed", "type": "bedrock", "url": url_of(server), "api_key": fake.API_KEY,
             "options": {"region": fake.REGION, "models": [fake.PROFILE]}}
    async with cloud(tmp_path, keyed) as (client, _):
        reply = await client.chat.completions.create(
            model=fake.PROFILE, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from Bedrock."
        sent = server.app[fake.KNOBS].requests[-1]
        assert sent["headers"]["Authorization"] == f"Bearer {fake.API_KEY}"
    wrong = bedrock_row(server, models=[fake.MODEL], secret_access_key="not-the-secret")
    [role] = registry.resolve("cloud")
    async with run_role(role, tmp_path, backends=[wrong]) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(
                model=fake.MODEL, messages=[{"role": "user", "content": "hi"}])
        # AWS's 403 (the signature does not match) is eldric's key refused, never the
        # client's 401/403: the cloud's 503 says which backend refused it
        assert refused.value.status_code == 503
        assert "aws refused its API key (HTTP 403)" in refused.value.message
        await client.close()


async def test_images_and_other_client_apis_reach_bedrock(aiohttp_server, tmp_path):
    """A data: image as Converse image bytes; Anthropic's Messages and OpenAI's Responses
    clients translated to chat, then to Converse, and back."""
    import base64

    import anthropic

    server = await aiohttp_server(fake.make_app())
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
    async with cloud(tmp_path, bedrock_row(server)) as (client, url):
        reply = await client.chat.completions.create(model=fake.MODEL, messages=[
            {"role": "user", "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}])
        assert reply.choices[0].message.content == "Hello from Bedrock."
        block = server.app[fake.KNOBS].requests[-1]["body"]["messages"][0]["content"][1]
        assert block == {"image": {"format": "png", "source": {"bytes": png}}}

        claude = anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0)
        msg = await claude.messages.create(model=fake.MODEL, max_tokens=32, messages=[
            {"role": "user", "content": "hi"}])
        assert msg.content[0].text == "Hello from Bedrock."
        assert (msg.usage.input_tokens, msg.usage.output_tokens) == (12, 7)
        async with claude.messages.stream(model=fake.MODEL, max_tokens=32, messages=[
                {"role": "user", "content": "hi"}]) as stream:
            text = "".join([t async for t in stream.text_stream])
        assert text == "Hello from Bedrock."
        await claude.close()
        resp = await client.responses.create(model=fake.MODEL, input="hi")
        assert resp.output_text == "Hello from Bedrock."
