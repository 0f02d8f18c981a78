"""The semantic matcher (eldric/replycache/semantic*.py) against a real HTTP embeddings
server whose vectors the test controls, memory and (real redis-server) Redis indexes."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import openai
import pytest
from aiohttp import web

from eldric.replycache.semantic import Matcher, MemoryIndex, probe, vectors
from eldric.replycache.semantic_redis import RedisIndex
from tests.fakes import embeddings as fake

Q = "What is the capital of France?"
PARA = "Tell me the capital city of France."
FAR = "How do I bake bread?"
THIRD = "Name a prime number."


def near(cos: float) -> list[float]:
    """A vector at cosine `cos` from [1, 0, 0, 0] (not of length 1: the matcher scales)."""
    return [2 * cos, 2 * math.sqrt(1 - cos * cos), 0.0, 0.0]


@pytest.fixture
async def backend():
    app = fake.make_app()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    knobs = app[fake.KNOBS]
    knobs.vectors.update({Q: [1.0, 0.0, 0.0, 0.0], PARA: near(0.97), FAR: near(0.5),
                          THIRD: [0.0, 0.0, 0.0, 1.0]})
    yield f"http://127.0.0.1:{port}", knobs
    await runner.cleanup()


def embedder(url: str, fmt: str):
    """The role's embed callable as a role would make it: POST /v1/embeddings, decode."""
    async def embed(texts):
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/embeddings", json={
                    "model": "emb", "input": list(texts), "encoding_format": fmt}) as r:
                if r.status != 200:
                    raise RuntimeError(f"embeddings: {r.status}")
                return vectors(await r.json())
    return embed


@pytest.mark.parametrize("fmt", ["float", "base64"])
async def test_paraphrase_hits_above_threshold_and_misses_below(backend, fmt):
    url, knobs = backend
    m = Matcher(embedder(url, fmt), threshold=0.95)
    assert await m.find("k1", "m", Q) is None          # empty index: miss
    await m.remember("k1", "m", Q, "exact-key-1")
    assert await m.find("k1", "m", PARA) == "exact-key-1"   # cos 0.97 >= 0.95
    assert await m.find("k1", "m", FAR) is None              # cos 0.5
    strict = Matcher(embedder(url, fmt), threshold=0.99)
    await strict.remember("k1", "m", Q, "exact-key-1")
    assert await strict.find("k1", "m", PARA) is None        # 0.97 < 0.99
    assert knobs.formats and set(knobs.formats) == {fmt}


async def test_scoped_per_key_and_model(backend):
    url, _ = backend
    m = Matcher(embedder(url, "float"))
    await m.remember("k1", "m", Q, "key-1")
    assert await m.find("k2", "m", PARA) is None
    assert await m.find("k1", "other-model", PARA) is None
    assert await m.find("k1", "m", PARA) == "key-1"


async def test_remember_reuses_the_lookups_vector(backend):
    url, knobs = backend
    m = Matcher(embedder(url, "float"))
    await m.find("k1", "m", Q)
    await m.remember("k1", "m", Q, "key-1")
    assert knobs.calls == 1


async def test_backend_down_or_slow_is_a_miss_counted(backend):
    url, knobs = backend
    m = Matcher(embedder(url, "float"), deadline_s=0.2)
    await m.remember("k1", "m", Q, "key-1")
    knobs.fail_status = 503
    assert await m.find("k1", "m", PARA) is None
    assert m.failures == 1
    knobs.fail_status, knobs.delay = None, 1.0
    assert await asyncio.wait_for(m.find("k1", "m", FAR), 0.8) is None  # deadline 0.2 s
    assert m.failures == 2
    down = Matcher(embedder("http://127.0.0.1:1", "float"))
    assert await down.find("k1", "m", Q) is None and down.failures == 1


async def test_fake_reply_is_what_the_openai_sdk_reads(backend):
    """The fake follows OpenAI's shape: the SDK (base64 by default) decodes the vectors."""
    url, knobs = backend
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x")
    for fmt in (openai.NOT_GIVEN, "float"):
        r = await client.embeddings.create(model="emb", input=[Q, PARA], encoding_format=fmt)
        assert r.data[0].embedding == [1.0, 0.0, 0.0, 0.0]
        assert r.data[1].embedding == pytest.approx(near(0.97), rel=1e-6)
    assert knobs.formats == ["base64", "float"]
    await client.close()


def test_probe_scopes_context_and_bounds_turns():
    sys_a = {"role": "system", "content": "You are terse."}
    one = {"messages": [sys_a, {"role": "user", "content": "  What  is X? "}]}
    scope, turn = probe(one, "k", max_turns=1)
    assert turn == "What is X?"
    other_sys = {"messages": [{"role": "system", "content": "You are a pirate."},
                              {"role": "user", "content": "What is X?"}]}
    assert probe(other_sys, "k", 1)[0] != scope          # another system prompt
    assert probe({"messages": one["messages"][1:]}, "k", 1)[0] != scope
    long = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant",
                         "content": "b"}, {"role": "user", "content": "What is X?"}]}
    assert probe(long, "k", 1) is None                   # past max_turns
    assert probe(long, "k", 2)[1] == "What is X?"
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert probe(parts, "k", 1)[1] == "hi"
    image = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}
    assert probe(image, "k", 1) is None
    assert probe({"messages": [{"role": "assistant", "content": "x"}]}, "k", 1) is None
    assert probe({"prompt": "x"}, "k", 1) is None


async def test_memory_index_is_bounded():
    idx = MemoryIndex(per_bucket=2, buckets=2)
    v = [1.0, 0.0]
    for k in ("a", "b", "c"):
        await idx.add("b1", k, v)
    assert list(idx.buckets["b1"]) == ["b", "c"]
    await idx.add("b2", "x", v)
    await idx.add("b3", "y", v)
    assert list(idx.buckets) == ["b2", "b3"]


async def test_redis_index_shared_bounded_and_down(backend, redis_url):
    from redis.asyncio import Redis

    url, _ = backend
    one = Matcher(embedder(url, "float"), RedisIndex(Redis.from_url(redis_url), per_bucket=2))
    two = Matcher(embedder(url, "base64"), RedisIndex(Redis.from_url(redis_url), per_bucket=2))
    await one.remember("k1", "m", Q, "key-1")
    assert await two.find("k1", "m", PARA) == "key-1"   # another process's entry
    assert await two.find("k2", "m", PARA) is None
    await one.remember("k1", "m", FAR, "key-2")
    await one.remember("k1", "m", THIRD, "key-3")       # bound 2: key-1 goes
    assert await two.find("k1", "m", PARA) is None
    await one.close()
    down = Matcher(embedder(url, "float"),
                   RedisIndex(Redis.from_url("redis://127.0.0.1:1/0")))
    assert await down.find("k1", "m", Q) is None and down.failures == 1
    await down.remember("k1", "m", Q, "key-1")           # no raise
    await two.close()
    await down.close()


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_prefilter_keeps_near_vectors_in_many_dims(store, request):
    """384-dim vectors: the sign prefilter keeps a neighbour at cosine ~0.97 among 200
    unrelated entries; one at ~0.90 is not a hit at threshold 0.95 (exact cosine)."""
    import random

    from eldric.replycache.semantic import make, unit

    rng = random.Random(7)
    rand = lambda: unit([rng.gauss(0, 1) for _ in range(384)])  # noqa: E731
    table: dict[str, list[float]] = {}

    async def embed(texts):
        return [table[t] for t in texts]

    redis = None
    if store == "redis":
        from redis.asyncio import Redis
        redis = Redis.from_url(request.getfixturevalue("redis_url"))
    m = make(embed, redis=redis, threshold=0.95)
    for i in range(200):
        table[f"t{i}"] = rand()
        await m.remember("k", "m", f"t{i}", f"key-{i}")
    base, noise = table["t42"], rand()
    table["near"] = unit([b + 0.25 * e for b, e in zip(base, noise)])   # cos ~0.97
    table["far"] = unit([b + 0.5 * e for b, e in zip(base, noise)])     # cos ~0.89
    assert await m.find("k", "m", "near") == "key-42"
    assert await m.find("k", "m", "far") is None
    await m.close()
