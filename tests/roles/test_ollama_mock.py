"""The `ollama` Python client against the whole cluster on the mock backend: worker,
router and edge each answer Ollama's API (chat, generate, streaming, embed, list, show,
version, ps), translated at the worker; errors are ollama.ResponseError with the status."""

from __future__ import annotations

import aiohttp
import ollama
import pytest

from eldric.mock.server import MODEL
from tests.roles.ollama_hops import KEY, client, hops

MSGS = [{"role": "user", "content": "why is the sky blue?"}]
WORDS = "The quick brown fox jumps over the lazy dog.The quick brown fox jumps over"


async def test_chat_generate_and_streams_on_every_hop(tmp_path):
    async with hops(tmp_path, backend="mock", mock_tokens=16) as urls:
        for hop, url in urls.items():
            c = client(url)
            r = await c.chat(MODEL, MSGS)
            assert (r.message.content, r.done, r.done_reason) == (WORDS, True, "stop"), hop
            assert (r.model, r.prompt_eval_count, r.eval_count) == (MODEL, 6, 16)
            parts = [p async for p in await c.chat(MODEL, MSGS, stream=True)]
            assert "".join(p.message.content for p in parts) == WORDS
            assert [p.done for p in parts] == [False] * 16 + [True]
            assert (parts[-1].eval_count, parts[-1].done_reason) == (16, "stop")
            capped = await c.generate(MODEL, "Why is the sky blue?", options={"num_predict": 3})
            assert (capped.response, capped.done_reason) == ("The quick brown", "length")
            parts = [p async for p in await c.generate(MODEL, "Why?", stream=True)]
            assert "".join(p.response for p in parts) == WORDS and parts[-1].done


async def test_embed_list_show_version_ps_on_every_hop(tmp_path):
    async with hops(tmp_path, backend="mock") as urls:
        for hop, url in urls.items():
            c = client(url)
            e = await c.embed(MODEL, ["one", "two"])
            assert len(e.embeddings) == 2 and len(e.embeddings[0]) == 8, hop
            assert len((await c.embeddings(MODEL, "one")).embedding) == 8
            assert [m.model for m in (await c.list()).models] == [MODEL]
            shown = await c.show(MODEL)
            assert "completion" in shown.capabilities and shown.modelinfo == {}
            assert (await c.ps()).models == []
            async with aiohttp.ClientSession(
                    headers={"Authorization": f"Bearer {KEY}"}) as s:
                async with s.get(url + "/api/version") as r:
                    assert r.status == 200 and (await r.json())["version"]


async def test_unknown_models_and_bad_bodies_are_ollama_errors(tmp_path):
    async with hops(tmp_path, backend="mock") as urls:
        for hop, url in urls.items():
            c = client(url)
            with pytest.raises(ollama.ResponseError) as err:
                await c.show("no-such-model")
            assert err.value.status_code == 404, hop
            if hop != "worker":  # the mock itself answers any model name
                for call in (c.chat("no-such-model", MSGS), c.generate("no-such-model", "?"),
                             c.embed("no-such-model", "x")):
                    with pytest.raises(ollama.ResponseError) as err:
                        await call
                    assert err.value.status_code == 404
            async with aiohttp.ClientSession(
                    headers={"Authorization": f"Bearer {KEY}"}) as s:
                async with s.post(url + "/api/chat", json={
                        "model": MODEL, "messages": [{"role": "robot"}]}) as r:
                    body = await r.json()
                    assert r.status == 400 and body["code"] == "invalid_request"
                    assert set(body) == {"error", "code"}  # Ollama's shape, eldric's code
                async with s.post(url + "/api/chat", data=b"{nope") as r:
                    assert r.status == 400 and (await r.json())["code"] == "invalid_json"


async def test_the_edge_keys_ollama_paths_and_keeps_its_control_routes(tmp_path):
    async with hops(tmp_path, backend="mock") as urls:
        with pytest.raises(ollama.ResponseError) as err:
            await ollama.AsyncClient(host=urls["edge"]).chat(MODEL, MSGS)
        assert err.value.status_code == 401
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["edge"] + "/api/tags") as r:
                assert r.status == 401 and (await r.json())["code"] == "invalid_api_key"
            async with s.get(urls["edge"] + "/api/v1/upstreams") as r:
                assert r.status == 200 and "routers" in await r.json()
            async with s.get(urls["router"] + "/api/v1/workers") as r:
                assert r.status == 200 and len((await r.json())["workers"]) == 1
            async with s.get(urls["worker"] + "/health") as r:
                health = await r.json()
        assert {"/api/chat", "/api/generate", "/api/embed", "/api/show"} <= set(
            health["translated"])


async def test_the_edge_limits_ollama_paths(tmp_path):
    async with hops(tmp_path, {"per_ip_rpm": 2, "rate_window": 60000}, backend="mock") as urls:
        c = client(urls["edge"])
        await c.list()
        await c.chat(MODEL, MSGS)
        with pytest.raises(ollama.ResponseError) as err:
            await c.chat(MODEL, MSGS)
        assert err.value.status_code == 429
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
            async with s.get(urls["edge"] + "/api/tags") as r:
                assert r.status == 429 and r.headers["Retry-After"]
                assert (await r.json())["code"] == "rate_limit_ip"
