"""OpenAI's Responses API where the worker's backend is Ollama (--backend ollama; Ollama
serves /v1/responses since 0.13.3): the openai SDK through the worker, a router and an
edge gets the very bytes the fake Ollama sent, whole and streamed, and its errors; the
edge's store chains `previous_response_id` over it (Ollama keeps nothing)."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from tests.conftest import url_of
from tests.fakes import ollama as fake_ollama
from tests.roles.ollama_hops import KEY, hops

MODEL = fake_ollama.TAGS[0]
ASK = "why is the sky blue?"


def _sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)


async def _direct(fake) -> None:  # type: ignore[no-untyped-def]
    """The SDK on the fake itself, whole and streamed: it reads Ollama's replies as they
    are. (It also builds the SDK's types now, not while the hops' 100 ms health probes of
    the fake, served on this test's loop, wait on it.)"""
    async with _sdk(url_of(fake)) as client:
        resp = await client.responses.create(model=MODEL, input=ASK)
        assert resp.output_text == "Hello there!" and resp.store is False
        events = [e async for e in await client.responses.create(model=MODEL, input=ASK,
                                                                 stream=True)]
        assert events[-1].response.output_text == "Hello there!"


async def test_responses_pass_through_every_hop_byte_for_byte(fake_ollama_server, tmp_path):
    sent = fake_ollama_server.app[fake_ollama.SENT]
    got = fake_ollama_server.app[fake_ollama.GOT]
    await _direct(fake_ollama_server)
    async with hops(tmp_path, backend="ollama",
                    backend_url=url_of(fake_ollama_server)) as urls:
        for hop, url in urls.items():
            async with _sdk(url) as client:
                raw = await client.responses.with_raw_response.create(
                    model=MODEL, input=ASK, instructions="Be brief.", store=False)
                assert raw.http_response.content == sent[-1], hop
                resp = raw.parse()
                assert (resp.output_text, resp.status) == ("Hello there!", "completed"), hop
                assert resp.usage.output_tokens == fake_ollama.METRICS["eval_count"]
                assert got[-1] == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": ASK}], hop
                stream = await client.responses.create(
                    model=MODEL, store=False, stream=True,
                    input=[{"role": "user", "content": [{"type": "input_text", "text": ASK}]}])
                events = [e async for e in stream]
                assert [e.sequence_number for e in events] == list(range(len(events)))
                assert events[-1].type == "response.completed", hop
                assert events[-1].response.output_text == "Hello there!", hop
                assert "".join(e.delta for e in events
                               if e.type == "response.output_text.delta") == "Hello there!"
                assert got[-1] == [{"role": "user", "content": ASK}], hop
                with pytest.raises(openai.NotFoundError) as e:
                    await client.responses.create(model="no-such-model", input=ASK,
                                                  store=False)
                assert e.value.body["type"] == "not_found_error", hop
            body = {"model": MODEL, "input": ASK, "stream": True, "store": False}
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
                async with s.post(url + "/v1/responses", json=body) as r:
                    assert r.headers["Content-Type"].startswith("text/event-stream")
                    assert await r.read() == sent[-1], hop  # the stream, byte for byte


async def test_the_edge_chains_previous_response_id_over_ollama(fake_ollama_server, tmp_path):
    got = fake_ollama_server.app[fake_ollama.GOT]
    await _direct(fake_ollama_server)
    async with hops(tmp_path, backend="ollama",
                    backend_url=url_of(fake_ollama_server)) as urls, _sdk(urls["edge"]) as c:
        first = await c.responses.create(model=MODEL, input=ASK)
        assert first.store is True  # the edge kept it (Ollama's own reply says false)
        second = await c.responses.create(model=MODEL, input="and at night?",
                                          previous_response_id=first.id)
        assert got[-1] == [{"role": "user", "content": ASK},
                           {"role": "assistant", "content": "Hello there!"},
                           {"role": "user", "content": "and at night?"}]
        stream = await c.responses.create(model=MODEL, input="and at dawn?", stream=True,
                                          previous_response_id=second.id)
        events = [e async for e in stream]
        assert got[-1][-3:] == [{"role": "user", "content": "and at night?"},
                                {"role": "assistant", "content": "Hello there!"},
                                {"role": "user", "content": "and at dawn?"}]
        await c.responses.create(model=MODEL, input="and now?",
                                 previous_response_id=events[-1].response.id)
        said = {"role": "assistant", "content": "Hello there!"}
        assert got[-1] == [  # the streamed turn was kept too
            {"role": "user", "content": ASK}, said,
            {"role": "user", "content": "and at night?"}, said,
            {"role": "user", "content": "and at dawn?"}, said,
            {"role": "user", "content": "and now?"}]


async def test_ollamas_own_refusals_reach_the_client(fake_ollama_server, tmp_path):
    async with hops(tmp_path, backend="ollama",
                    backend_url=url_of(fake_ollama_server)) as urls, \
            aiohttp.ClientSession() as s:
        async with s.post(urls["worker"] + "/v1/responses", json={
                "model": MODEL, "input": [{"type": "message", "role": "user",
                                           "content": [{"type": "nope"}]}]}) as r:
            err = json.loads(await r.read())
        assert r.status == 400 and err["error"]["type"] == "invalid_request_error"
        async with s.post(urls["worker"] + "/v1/responses",
                          json={"model": "no-such-model", "input": ASK}) as r:
            err = json.loads(await r.read())
        assert r.status == 404 and err["error"]["type"] == "not_found_error"
