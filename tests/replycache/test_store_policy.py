"""The cache's parts on their own: the memory LRU's bounds and TTL, the key's
normalisation, the policy, a partial or failed stream never made whole; and the Redis
store through the edge, with Redis stopped mid-way."""

from __future__ import annotations

import asyncio

import pytest

from eldric.replycache.config import CacheConfig
from eldric.replycache.key import digest, directives, refusal
from eldric.replycache.replies import Accumulator, as_stream
from eldric.replycache.store import MemoryStore
from tests.conftest import free_port, redis_argv, start_redis
from tests.replycache.test_edge_cache import chat, counts, sdk
from tests.roles.edge_usage.helpers import cluster


async def test_memory_lru_bounds_and_ttl():
    s = MemoryStore(max_entries=2, max_bytes=10)
    await s.put("a", b"1234", 60)
    await s.put("b", b"1234", 60)
    await s.get("a")  # a used: b is the least recent
    await s.put("c", b"12", 60)
    assert await s.get("b") is None and await s.get("a") == b"1234"
    await s.put("d", b"123456789", 60)  # bytes bound: 4 + 2 + 9 > 10
    assert s.bytes <= 10 and await s.get("d") is not None
    await s.put("e", b"x", 0.05)
    await asyncio.sleep(0.08)
    assert await s.get("e") is None


def test_key_ignores_delivery_and_order_and_scopes():
    a = {"model": "m", "messages": [{"role": "user", "content": "q"}], "temperature": 0}
    b = {"temperature": 0, "stream": True, "user": "u", "stream_options": {},
         "messages": [{"content": "q", "role": "user"}], "model": "m"}
    assert digest("/p", a, "k1") == digest("/p", b, "k1")
    assert digest("/p", a, "k1") != digest("/p", a, "k2")
    assert digest("/p", a, "k1") != digest("/p", {**a, "max_tokens": 5}, "k1")


def test_policy():
    cfg = CacheConfig(mode="exact")
    assert refusal(cfg, {"temperature": 0}, "m") is None
    assert refusal(cfg, {"seed": 1, "temperature": 1}, "m") is None
    assert refusal(cfg, {}, "m") == "sampled"  # OpenAI's default temperature is 1
    assert refusal(CacheConfig(mode="exact", nondeterministic=True), {}, "m") is None
    assert refusal(CacheConfig(mode="exact", models=["a*"]), {"seed": 1}, "b") is not None
    assert refusal(cfg, [1], "m") is not None
    assert directives("no-cache") == (False, True)
    assert directives("max-age=0, no-store") == (False, False)
    assert directives(None) == (True, True)


def _events(reply: dict) -> list[bytes]:
    return [e + b"\n\n" for e in as_stream(reply, True, True).split(b"\n\n") if e]


def test_partial_or_failed_stream_not_made_whole():
    reply = {"id": "x", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"},
         "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                               "total_tokens": 2}}
    whole = Accumulator()
    for e in _events(reply):
        whole(e)
    made = whole.whole(True)
    assert made["choices"][0]["message"]["content"] == "hi" and made["usage"]
    cut = Accumulator()
    for e in _events(reply)[:-1]:  # no [DONE]
        cut(e)
    assert cut.whole(True) is None
    failed = Accumulator()
    failed(b'data: {"error": {"message": "boom"}}\n\n')
    failed(b"data: [DONE]\n\n")
    assert failed.whole(True) is None


@pytest.mark.asyncio
async def test_redis_store_shared_and_down_is_a_bypass(tmp_path):
    port = free_port()
    proc = start_redis(redis_argv(tmp_path, port), port)
    try:
        async with cluster(tmp_path, cache="exact", cache_store="redis",
                           cache_redis_url=f"redis://127.0.0.1:{port}/0") as (edge, _):
            c = sdk(edge)
            assert (await chat(c))[0] == "miss"
            await asyncio.sleep(0.1)  # the put is after the reply
            assert (await chat(c))[0] == "hit"
            proc.terminate()
            proc.wait(10)
            state, reply = await chat(c)  # Redis gone: the request answered anyway
            assert state == "bypass" and reply.choices[0].message.content
            assert counts(edge)[("bypass", "exact")] == 1
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


async def test_request_log_says_cache_hit_and_old_files_gain_the_column(tmp_path):
    import sqlite3
    import time

    from eldric.roles.edge.usage.record import Record, Tokens
    from eldric.roles.edge.usage.requestlog import SCHEMA, RequestLog

    path = str(tmp_path / "r.db")
    old = sqlite3.connect(path)  # a file made before the cache column
    old.execute(SCHEMA[0].replace(", cache TEXT", ""))
    old.commit()
    old.close()
    log = RequestLog(path, days=30, bound=10, bodies=False)
    await log.open()
    log.add(Record(ts=time.time(), client="a", model="m", backend="", path="/v1/completions",
                   status=200, tokens=Tokens(3, 4, cache_hit=7), cost=0.0, latency_ms=1.0,
                   cache="hit"))
    await log.flush()
    (row,) = await log.rows(since=0.0, until=float("inf"), client=None, model=None, limit=5)
    assert row["cache"] == "hit"
    await log.close()
