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


async def test_cut_stream_not_kept_and_a_tool_call_stream_replayed_whole(tmp_path,
                                                                       fake_openai_server):
    from tests.conftest import url_of
    from tests.fakes.openai_server import KNOBS, MODELS

    knobs = fake_openai_server.app[KNOBS]
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="vllm", backend_url=url_of(fake_openai_server)) as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000, cache="exact") as r:
        await until(lambda: _routes(r["router"]), timeout=15)
        c = sdk(r["router"])
        ask = dict(model=MODELS[0], messages=[{"role": "user", "content": "q"}], temperature=0)
        knobs.die_after = 2  # the backend closes mid-stream
        with pytest.raises(openai.APIError):  # eldric's error event ends the stream
            stream = await c.chat.completions.create(**ask, stream=True)
            [ch async for ch in stream]
        knobs.die_after = None
        raw = await c.chat.completions.with_raw_response.create(**ask)
        assert raw.headers["X-Eldric-Cache"] == "miss"  # the cut stream was not kept
        knobs.tool_calls = [("call_1", "get_weather", '{"city": "Paris"}')]
        tools = dict(model=MODELS[0], messages=[{"role": "user", "content": "weather?"}],
                     temperature=0)
        stream = await c.chat.completions.create(**tools, stream=True)
        [ch async for ch in stream]
        raw = await c.chat.completions.with_raw_response.create(**tools)
        assert raw.headers["X-Eldric-Cache"] == "hit"
        (call,) = raw.parse().choices[0].message.tool_calls
        assert (call.id, call.function.name, call.function.arguments) == \
            ("call_1", "get_weather", '{"city": "Paris"}')


async def test_the_response_cache_beside_the_cache_aware_strategy(tmp_path):
    """Both at once, and the strategy alone: the reply cache and the cache-aware
    strategy's state are two things on the router (one name held both: every request
    under cache_aware was a 500)."""
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000, cache="exact",
                       strategy="cache_aware") as r, \
            run_eldric("router", tmp_path / "r2", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000,
                       strategy="cache_aware") as r2:
        for url in (r["router"], r2["router"]):
            await until(lambda url=url: _routes(url), timeout=15)
        a = sdk(r["router"], "key-a")
        assert (await chat(a))[0] == "miss"
        assert (await chat(a))[0] == "hit"
        plain = sdk(r2["router"], "key-a")
        raw = await plain.chat.completions.with_raw_response.create(
            model="eldric-mock", messages=[{"role": "user", "content": "say hi"}],
            temperature=0)
        assert raw.http_response.status_code == 200
        assert "X-Eldric-Cache" not in raw.headers
