"""The official anthropic SDK against every hop, on the mock backend (which speaks only
Chat Completions, so the worker translates): the worker itself, a router in front of it,
and an edge in front of that (with a key, sent as the SDK sends it and as x-api-key).
Sync, async, messages.stream() and create(stream=True), count_tokens (an estimate here,
said so), and errors as the SDK's own exception classes carrying eldric's code."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import anthropic
import pytest

from tests.conftest import run_eldric
from tests.wire.anthropic_sdk import parsed

M = "eldric-mock"
KEY = "sk-claude"
HI = [{"role": "user", "content": "Hello"}]


@contextlib.asynccontextmanager
async def chain(tmp_path, hop: str):
    """The mock worker, and up to `hop` in front of it: the URL the client uses."""
    async with contextlib.AsyncExitStack() as stack:
        w = await stack.enter_async_context(run_eldric(
            "worker", tmp_path / "w", port=0, bind="127.0.0.1", backend="mock",
            mock_tokens=6))
        url = w["worker"]
        if hop in ("router", "edge"):
            r = await stack.enter_async_context(run_eldric(
                "router", tmp_path / "r", port=0, bind="127.0.0.1", workers=url))
            url = r["router"]
        if hop == "edge":
            e = await stack.enter_async_context(run_eldric(
                "edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                routers=url, api_key=KEY))
            url = e["edge"]
        yield url


HOPS = pytest.mark.parametrize("hop", ["worker", "router", "edge"])


def claude_at(url: str, key: str = KEY) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0)


@HOPS
async def test_create_sync_and_async(tmp_path, hop):
    async with chain(tmp_path, hop) as url:
        with anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0) as sync:
            msg = await asyncio.to_thread(sync.messages.create, model=M, max_tokens=64,
                                          system="Be brief.", messages=HI)
        assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
        assert msg.model == M and msg.content[0].type == "text" and msg.content[0].text
        assert msg.stop_reason == "end_turn" and msg.usage.output_tokens == 6
        assert msg.usage.input_tokens > 0
        async with claude_at(url) as claude:
            again = await claude.messages.create(model=M, max_tokens=3, messages=[
                *HI, {"role": "assistant", "content": "Hi!"},
                {"role": "user", "content": "More"}])
            assert again.stop_reason == "max_tokens" and again.usage.output_tokens == 3


@HOPS
async def test_streaming_both_ways(tmp_path, hop):
    async with chain(tmp_path, hop) as url:
        async with claude_at(url) as claude:
            async with claude.messages.stream(model=M, max_tokens=64, messages=HI) as s:
                text = "".join([t async for t in s.text_stream])
                final = await s.get_final_message()
            assert text and final.content[0].text == text and final.stop_reason == "end_turn"
            assert final.usage.output_tokens == 6 and final.usage.input_tokens > 0
            raw = [e async for e in await claude.messages.create(
                model=M, max_tokens=64, messages=HI, stream=True)]
            kinds = [e.type for e in raw]
            assert kinds[:2] == ["message_start", "content_block_start"]
            assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
            assert "".join(e.delta.text for e in raw if e.type == "content_block_delta") == text


@HOPS
async def test_count_tokens_is_an_estimate_and_says_so(tmp_path, hop):
    async with chain(tmp_path, hop) as url:
        async with claude_at(url) as claude:
            raw = await claude.messages.with_raw_response.count_tokens(
                model=M, messages=[{"role": "user", "content": "x" * 40}])
            assert raw.headers["X-Eldric-Estimate"] == "true"
            assert (await parsed(raw)).input_tokens == 10  # 40 characters, 4 a token


@HOPS
async def test_a_bad_request_is_the_sdks_bad_request_error(tmp_path, hop):
    async with chain(tmp_path, hop) as url:
        async with claude_at(url) as claude:
            with pytest.raises(anthropic.BadRequestError) as e:
                await claude.messages.create(model=M, max_tokens=0, messages=HI)
            assert e.value.body["type"] == "error"
            assert e.value.body["error"]["type"] == "invalid_request_error"
            assert e.value.body["error"]["code"] == "invalid_request"
            assert e.value.body["error"]["param"] == "max_tokens"
            with pytest.raises(anthropic.BadRequestError) as e:  # the same on the stream path
                async with claude.messages.stream(model=M, max_tokens=5, messages=[
                        {"role": "user", "content": [{"type": "video"}]}]) as s:
                    await s.get_final_message()
            assert e.value.body["error"]["param"] == "messages[0].content[0].type"


@pytest.mark.parametrize("hop", ["router", "edge"])
async def test_an_unknown_model_is_the_sdks_not_found_error(tmp_path, hop):
    async with chain(tmp_path, hop) as url:
        async with claude_at(url) as claude:
            with pytest.raises(anthropic.NotFoundError) as e:
                await claude.messages.create(model="no-such-model", max_tokens=5, messages=HI)
            assert e.value.body["error"]["type"] == "not_found_error"
            assert e.value.body["error"]["code"] == "model_not_found"


async def test_the_edge_takes_the_key_as_bearer_or_x_api_key(tmp_path):
    async with chain(tmp_path, "edge") as url:
        body = {"model": M, "max_tokens": 5, "messages": HI}
        async with aiohttp.ClientSession() as s:
            for headers in ({"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}):
                async with s.post(url + "/v1/messages", json=body, headers={
                        **headers, "anthropic-version": "2023-06-01"}) as r:
                    assert r.status == 200 and (await r.json())["type"] == "message"
            async with s.post(url + "/v1/messages", json=body,
                              headers={"x-api-key": "wrong"}) as r:
                err = await r.json()
                assert r.status == 401 and err["type"] == "error"
                assert err["error"]["type"] == "authentication_error"
                assert err["error"]["code"] == "invalid_api_key"
        async with claude_at(url, "wrong") as claude:
            with pytest.raises(anthropic.AuthenticationError):
                await claude.messages.create(model=M, max_tokens=5, messages=HI)


async def test_the_worker_says_it_translates_messages(tmp_path):
    async with chain(tmp_path, "worker") as url:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/health") as r:
                health = await r.json()
        assert "/v1/messages" in health["translated"] and "/v1/messages" in health["paths"]
