"""Anthropic's Messages API where the worker's backend is Ollama (--backend ollama; Ollama
serves /v1/messages since 0.14): the anthropic SDK through the worker, a router and an
edge gets the very bytes the fake Ollama sent, whole and streamed, and its errors."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest

from tests.conftest import url_of
from tests.fakes import ollama as fake_ollama
from tests.roles.ollama_hops import KEY, hops
from tests.wire.anthropic_sdk import parsed

MODEL = fake_ollama.TAGS[0]
HI = [{"role": "user", "content": "why is the sky blue?"}]


async def test_messages_pass_through_every_hop_byte_for_byte(fake_ollama_server, tmp_path):
    sent = fake_ollama_server.app[fake_ollama.SENT]
    async with hops(tmp_path, backend="ollama",
                    backend_url=url_of(fake_ollama_server)) as urls:
        for hop, url in urls.items():
            async with anthropic.AsyncAnthropic(base_url=url, api_key=KEY,
                                                max_retries=0) as claude:
                raw = await claude.messages.with_raw_response.create(
                    model=MODEL, max_tokens=64, system="Be brief.", messages=HI)
                assert raw.http_response.content == sent[-1], hop
                msg = await parsed(raw)
                assert (msg.content[0].text, msg.stop_reason) == ("Hello there!", "end_turn")
                assert msg.usage.output_tokens == fake_ollama.METRICS["eval_count"]
                async with claude.messages.stream(model=MODEL, max_tokens=64,
                                                  messages=HI) as s:
                    text = "".join([t async for t in s.text_stream])
                    final = await s.get_final_message()
                assert text == "Hello there!" and final.stop_reason == "end_turn", hop
                with pytest.raises(anthropic.NotFoundError) as e:
                    await claude.messages.create(model="no-such-model", max_tokens=8,
                                                 messages=HI)
                assert e.value.body["type"] == "error", hop
            body = {"model": MODEL, "max_tokens": 64, "stream": True, "messages": HI}
            async with aiohttp.ClientSession(headers={"x-api-key": KEY}) as s:
                async with s.post(url + "/v1/messages", json=body) as r:
                    assert r.headers["Content-Type"].startswith("text/event-stream")
                    assert await r.read() == sent[-1], hop  # the stream, byte for byte


async def test_ollamas_own_refusals_reach_the_client(fake_ollama_server, tmp_path):
    async with hops(tmp_path, backend="ollama",
                    backend_url=url_of(fake_ollama_server)) as urls, \
            aiohttp.ClientSession() as s:
        async with s.post(urls["worker"] + "/v1/messages",
                          json={"model": MODEL, "messages": HI}) as r:  # no max_tokens
            err = json.loads(await r.read())
        assert r.status == 400 and err["type"] == "error"
        assert err["error"]["type"] == "invalid_request_error"
        async with s.post(urls["worker"] + "/v1/messages",
                          json={"model": "no-such-model", "max_tokens": 8,
                                "messages": HI}) as r:
            err = json.loads(await r.read())
        assert r.status == 404 and err["error"]["type"] == "not_found_error"
