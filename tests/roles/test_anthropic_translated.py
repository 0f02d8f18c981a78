"""/v1/messages translated by a worker in front of a Chat Completions backend (the fake
vLLM-shaped server, as a TGI worker, which has no Messages API): what the backend
receives, the tool round trip whole and streamed, images, count_tokens by vLLM's
/tokenize, and the backend's own errors as the anthropic SDK's exception classes."""

from __future__ import annotations

import contextlib
import json

import anthropic
import pytest

from tests.conftest import run_eldric, url_of
from tests.fakes import openai_server
from tests.wire.anthropic_sdk import parsed

M = openai_server.MODELS[0]
WEATHER = {"name": "get_weather", "description": "Weather for a place",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                            "required": ["location"]}}
ARGS = '{"location": "Paris, France"}'
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
       "AAAABJRU5ErkJggg==")  # a 1x1 PNG


@contextlib.asynccontextmanager
async def worker(tmp_path, backend_url: str, backend: str = "tgi", **flags):
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend=backend,
                          backend_url=backend_url, **flags) as w:
        async with anthropic.AsyncAnthropic(base_url=w["worker"], api_key="unused",
                                            max_retries=0) as claude:
            yield claude


def sent(knobs) -> dict:  # type: ignore[no-untyped-def]
    chats = [r for r in knobs.requests if r["path"] == "/v1/chat/completions"]
    return json.loads(chats[-1]["body"])


async def test_the_tool_round_trip(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[openai_server.KNOBS]
    knobs.tool_calls = [("call_1", "get_weather", ARGS)]
    async with worker(tmp_path, url_of(fake_openai_server)) as claude:
        ask = [{"role": "user", "content": "Weather in Paris?"}]
        msg = await claude.messages.create(model=M, max_tokens=64, tools=[WEATHER],
                                           tool_choice={"type": "any"}, messages=ask)
        assert msg.stop_reason == "tool_use"
        use = msg.content[0]
        assert (use.type, use.id, use.name, use.input) == (
            "tool_use", "call_1", "get_weather", {"location": "Paris, France"})
        body = sent(knobs)
        assert body["tool_choice"] == "required"
        assert body["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
        # streamed, the arguments arrive in pieces and add up to the same input
        async with claude.messages.stream(model=M, max_tokens=64, tools=[WEATHER],
                                          messages=ask) as s:
            final = await s.get_final_message()
        assert final.content[0].input == {"location": "Paris, France"}
        assert final.stop_reason == "tool_use"
        knobs.tool_calls = None
        answer = await claude.messages.create(model=M, max_tokens=64, tools=[WEATHER], messages=[
            *ask, {"role": "assistant", "content": [c.model_dump() for c in msg.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1",
                                          "content": "18°C, sunny"}]}])
        assert answer.stop_reason == "end_turn" and answer.content[0].text
        assert sent(knobs)["messages"][1:] == [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather",
                              "arguments": '{"location":"Paris, France"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C, sunny"}]


async def test_images_base64_and_url_reach_the_backend(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[openai_server.KNOBS]
    async with worker(tmp_path, url_of(fake_openai_server)) as claude:
        await claude.messages.create(model=M, max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "text", "text": "Same animal?"}]}],
            stop_sequences=["END"], metadata={"user_id": "u-42"})
        body = sent(knobs)
    assert body["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Same animal?"}]
    assert body["stop"] == ["END"] and body["user"] == "u-42"


async def test_the_backends_errors_are_the_sdks(fake_openai_server, tmp_path):
    async with worker(tmp_path, url_of(fake_openai_server)) as claude:
        with pytest.raises(anthropic.NotFoundError) as e:  # the backend's own 404
            await claude.messages.create(model="nope", max_tokens=8,
                                         messages=[{"role": "user", "content": "hi"}])
        assert e.value.body["error"]["type"] == "not_found_error"
        knobs = fake_openai_server.app[openai_server.KNOBS]
        knobs.fail_status = 400
        knobs.fail_body = json.dumps({"error": {"message": "context too long", "type":
                                                "BadRequestError", "param": None,
                                                "code": 400}}).encode()
        with pytest.raises(anthropic.BadRequestError) as e:
            await claude.messages.create(model=M, max_tokens=8,
                                         messages=[{"role": "user", "content": "hi"}])
        assert e.value.body["error"]["type"] == "invalid_request_error"
        assert e.value.body["error"]["message"] == "context too long"


async def test_a_backend_dying_mid_stream_ends_in_an_error_event(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[openai_server.KNOBS]
    knobs.die_after = 2
    async with worker(tmp_path, url_of(fake_openai_server)) as claude:
        with pytest.raises(anthropic.APIStatusError) as e:
            async with claude.messages.stream(model=M, max_tokens=8, messages=[
                    {"role": "user", "content": "hi"}]) as s:
                await s.get_final_message()
        assert e.value.body["error"]["code"] == "upstream_error"


async def test_count_tokens_by_the_backends_tokenizer(fake_openai_server, tmp_path):
    """A vLLM without the Messages API (--paths without /v1/messages): its /tokenize
    counts the translated prompt; a real count, not marked as an estimate."""
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="vllm",
                          backend_url=url_of(fake_openai_server),
                          paths="/v1/chat/completions") as w:
        async with anthropic.AsyncAnthropic(base_url=w["worker"], api_key="unused",
                                            max_retries=0) as claude:
            raw = await claude.messages.with_raw_response.count_tokens(
                model=M, system="Be brief.",
                messages=[{"role": "user", "content": "one two three"}])
            # the fake's count: one per message and one per word
            assert (await parsed(raw)).input_tokens == 2 + 2 + 3
            assert "X-Eldric-Estimate" not in raw.headers
            with pytest.raises(anthropic.NotFoundError):
                await claude.messages.count_tokens(
                    model="nope", messages=[{"role": "user", "content": "hi"}])
            with pytest.raises(anthropic.BadRequestError) as e:
                await claude.messages.count_tokens(model=M, messages=[])
            assert e.value.body["error"]["param"] == "messages"
    knobs = fake_openai_server.app[openai_server.KNOBS]
    tokenized = json.loads([r for r in knobs.requests if r["path"] == "/tokenize"][0]["body"])
    assert tokenized == {"model": M, "add_generation_prompt": True, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "one two three"}]}


@pytest.mark.parametrize("status", [404, 500])
async def test_count_tokens_estimates_where_the_tokenizer_is_missing_or_fails(
        fake_openai_server, tmp_path, status):
    """A vLLM whose /tokenize answers 404 (not there) or fails: the documented estimate,
    marked as one; a 404 for a model the backend does not serve is still a 404."""
    knobs = fake_openai_server.app[openai_server.KNOBS]
    knobs.tokenize_status = status
    async with worker(tmp_path, url_of(fake_openai_server), "vllm",
                      paths="/v1/chat/completions") as claude:
        raw = await claude.messages.with_raw_response.count_tokens(
            model=M, messages=[{"role": "user", "content": "one two three four"}])
        assert raw.headers["X-Eldric-Estimate"] == "true"
        assert (await parsed(raw)).input_tokens == 5  # 18 characters / 4, rounded up
        if status == 404:
            knobs.tokenize_status = None  # the fake's own 404 for an unknown model
            with pytest.raises(anthropic.NotFoundError):
                await claude.messages.count_tokens(
                    model="nope", messages=[{"role": "user", "content": "hi"}])
    assert any(r["path"] == "/tokenize" for r in knobs.requests)
