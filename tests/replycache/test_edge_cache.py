"""The response cache at the edge, end to end: the openai SDK → edge → router → worker
(mock backend). Hits, misses, bypasses, stream from whole and whole from stream, scope,
opt-outs, the bounds, usage."""

from __future__ import annotations

import openai
import pytest

from tests.roles.edge_usage.helpers import cluster, edge_state, records

pytestmark = pytest.mark.asyncio
ASK = [{"role": "user", "content": "say hi"}]


def sdk(url: str, key: str = "x") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


async def chat(c: openai.AsyncOpenAI, **kw):
    kw.setdefault("temperature", 0)
    raw = await c.chat.completions.with_raw_response.create(model="eldric-mock", messages=ASK, **kw)
    return raw.headers.get("X-Eldric-Cache"), raw.parse()


def counts(url: str) -> dict:
    m = edge_state(url).cache.requests
    return {(s.labels["result"], s.labels["kind"]): s.value
            for metric in m.collect() for s in metric.samples if s.name.endswith("_total")}


async def test_hit_miss_bypass_stream_and_whole(tmp_path):
    async with cluster(tmp_path, cache="exact") as (edge, _):
        c = sdk(edge)
        state, first = await chat(c)
        assert state == "miss"
        state, again = await chat(c)
        assert state == "hit" and again.id == first.id  # the backend was not asked again
        assert again.choices[0].message.content == first.choices[0].message.content
        # a streamed request answered from the whole reply, as a stream, usage chunk too
        raw = await c.chat.completions.with_raw_response.create(
            model="eldric-mock", messages=ASK, temperature=0, stream=True,
            stream_options={"include_usage": True})
        assert raw.headers["X-Eldric-Cache"] == "hit"
        chunks = [ch async for ch in raw.parse()]
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == first.choices[0].message.content
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
        assert any(ch.choices and ch.choices[0].finish_reason for ch in chunks)
        # sampled: not cached; no-cache: bypassed
        assert (await chat(c, temperature=0.7))[0] == "bypass"
        state, fresh = await chat(c, extra_headers={"Cache-Control": "no-cache"})
        assert state == "bypass" and fresh.id != first.id
        # a stream stored, answering a whole request
        ask = [{"role": "user", "content": "a stream first"}]
        stream = await c.chat.completions.create(model="eldric-mock", messages=ask, temperature=0,
                                                 stream=True)
        streamed = "".join([ch.choices[0].delta.content or "" async for ch in stream
                            if ch.choices])
        raw = await c.chat.completions.with_raw_response.create(
            model="eldric-mock", messages=ask, temperature=0)
        assert raw.headers["X-Eldric-Cache"] == "hit"
        assert raw.parse().choices[0].message.content == streamed
        got = counts(edge)
        assert got[("hit", "exact")] == 3 and got[("miss", "exact")] == 2
        assert got[("bypass", "exact")] == 2
        # usage: a hit counted, its tokens as cache hits, cost 0
        hits = [r for r in records(edge) if r.cache == "hit"]
        assert len(hits) == 3 and all(r.tokens.cache_hit > 0 and r.cost in (0, None)
                                      for r in hits)


async def test_per_key_scope_shared_and_opt_outs(tmp_path):
    async with cluster(tmp_path, cache="exact", require_api_key=True,
                       api_key=["key-a", "key-b"]) as (edge, _):
        a, b = sdk(edge, "key-a"), sdk(edge, "key-b")
        assert (await chat(a))[0] == "miss"
        assert (await chat(a))[0] == "hit"
        assert (await chat(b))[0] == "miss"  # another key does not see a's
    async with cluster(tmp_path / "2", cache="exact", cache_shared=True,
                       require_api_key=True, api_key=["key-a", "key-b"]) as (edge, _):
        a, b = sdk(edge, "key-a"), sdk(edge, "key-b")
        assert (await chat(a))[0] == "miss"
        assert (await chat(b))[0] == "hit"
    async with cluster(tmp_path / "3", cache="exact", cache_models="other*") as (edge, _):
        c = sdk(edge)
        assert (await chat(c))[0] == "bypass"  # model not opted in
        assert (await chat(c))[0] == "bypass"


async def test_error_not_cached_and_bad_body(tmp_path):
    async with cluster(tmp_path, cache="exact") as (edge, _):
        c = sdk(edge)
        for _ in range(2):
            with pytest.raises(openai.NotFoundError) as e:
                await c.chat.completions.with_raw_response.create(
                    model="no-such-model", messages=ASK, temperature=0)
            assert e.value.response.headers["X-Eldric-Cache"] == "miss"
        assert counts(edge).get(("hit", "exact"), 0) == 0


async def test_a_client_opts_out_in_its_settings(tmp_path):
    from tests.conftest import run_eldric, until
    from tests.roles.edge_usage.budget_cluster import edge_with_file
    from tests.roles.edge_usage.helpers import _routes

    section = {"auth": {"api_keys": {"sk-a": "a", "sk-b": "b", "sk-c": "c"},
                        "clients": {"b": {"cache": False}, "c": {"allowed_models": ["x*"]}}}}
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000) as r:
        await until(lambda: _routes(r["router"]), timeout=15)
        async with edge_with_file(tmp_path / "e", section, routers=r["router"],
                                  cache="exact", cache_shared=True, global_rpm=0, per_ip_rpm=0,
                                  per_key_rpm=0) as edge:
            a, b = sdk(edge, "sk-a"), sdk(edge, "sk-b")
            assert [(await chat(a))[0] for _ in range(2)] == ["miss", "hit"]
            assert [(await chat(b))[0] for _ in range(2)] == ["bypass", "bypass"]
            # a shared hit is still the client's request: a model it may not use refused
            with pytest.raises(openai.PermissionDeniedError):
                await chat(sdk(edge, "sk-c"))
