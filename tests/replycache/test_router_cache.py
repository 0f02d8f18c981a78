"""The response cache at the router: the openai SDK → router → worker (mock backend);
scoped by the presented key's digest; an error is not cached."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import run_eldric, until
from tests.replycache.test_edge_cache import chat, sdk
from tests.roles.edge_usage.helpers import _routes

pytestmark = pytest.mark.asyncio


async def test_router_hit_stream_scope_and_error(tmp_path):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000, cache="exact") as r:
        url = r["router"]
        await until(lambda: _routes(url), timeout=15)
        a, b = sdk(url, "key-a"), sdk(url, "key-b")
        state, first = await chat(a)
        assert state == "miss"
        state, again = await chat(a)
        assert state == "hit" and again.id == first.id
        assert (await chat(b))[0] == "miss"  # another key's cache
        stream = await a.chat.completions.create(
            model="eldric-mock", messages=[{"role": "user", "content": "say hi"}],
            temperature=0, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == first.choices[0].message.content
        with pytest.raises(openai.NotFoundError) as e:
            await a.chat.completions.create(model="nope", messages=[], temperature=0)
        assert e.value.response.headers["X-Eldric-Cache"] == "miss"
        raw = await a.embeddings.with_raw_response.create(model="eldric-mock", input="x")
        assert "X-Eldric-Cache" not in raw.headers  # not a cached path


async def test_router_ttl_and_entry_bound(tmp_path):
    import asyncio

    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000, cache="exact",
                       cache_ttl=300) as r, \
            run_eldric("router", tmp_path / "r2", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000, cache="exact",
                       cache_max_entry_bytes=10) as small:
        await until(lambda: _routes(r["router"]), timeout=15)
        await until(lambda: _routes(small["router"]), timeout=15)
        c = sdk(r["router"])
        assert [(await chat(c))[0] for _ in range(2)] == ["miss", "hit"]
        await asyncio.sleep(0.4)
        assert (await chat(c))[0] == "miss"  # expired
        s = sdk(small["router"])
        assert [(await chat(s))[0] for _ in range(2)] == ["miss", "miss"]  # too big to keep
