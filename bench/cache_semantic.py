"""What one semantic-cache lookup costs (issue 22, eldric/replycache/semantic*.py):
the index scan alone, µs per lookup, for buckets of 256 (the default bound), 1k and 10k entries, memory index
(pure Python dot products over normalised vectors), and the Redis index when
--redis-url is given (a plain redis-server: HGETALL of the bucket + the scan). The
embeddings call is not included (it is a network round trip to a model: measure it
there); nor is the Store's get of the found key (the exact cache's cost).

    python bench/cache_semantic.py [--dims 384] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from eldric.replycache.semantic import Matcher, MemoryIndex, probe, unit


def rand_vec(rng: random.Random, dims: int) -> list[float]:
    return unit([rng.gauss(0, 1) for _ in range(dims)])


async def fill_and_time(index, n: int, dims: int, lookups: int) -> float:
    rng = random.Random(n)
    vecs = {}

    async def embed(texts):
        return [vecs[t] for t in texts]

    m = Matcher(embed, index, threshold=0.95)
    for i in range(n):
        vecs[f"t{i}"] = rand_vec(rng, dims)
        await m.index.add("bucket", f"k{i}", vecs[f"t{i}"])
    # half the probes unrelated (a miss), half a perturbed stored vector at cosine
    # ~0.96 (a hit unless the sign prefilter wrongly skips it: counted)
    probes = []
    for i in range(lookups):
        if i % 2:
            probes.append(rand_vec(rng, dims))
        else:
            base, noise = vecs[f"t{rng.randrange(n)}"], rand_vec(rng, dims)
            probes.append(unit([b + 0.29 * e for b, e in zip(base, noise)]))
    hits = 0
    t0 = time.perf_counter()
    for p in probes:
        found = await m.index.best("bucket", p, m.threshold)
        hits += found is not None and found[0] >= m.threshold
    us = (time.perf_counter() - t0) / lookups * 1e6
    return us, hits, (lookups + 1) // 2


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--redis-url", default="")
    args = ap.parse_args()
    body = {"model": "m", "messages": [{"role": "system", "content": "You are terse."},
                                       {"role": "user", "content": "What is the capital "
                                        "of France, and why is it that city?"}]}
    t0 = time.perf_counter()
    for _ in range(20000):
        probe(body, "scope", 1)
    print(f"probe (scope + turn of a request): {(time.perf_counter() - t0) / 20000 * 1e6:.1f} µs")
    for n, lookups in ((256, 200), (1000, 200), (10000, 50)):
        us, hits, near = await fill_and_time(MemoryIndex(per_bucket=n), n, args.dims, lookups)
        print(f"memory index  {n:>6} entries  dims {args.dims}: {us:10.0f} µs/lookup"
              f"  (near probes found: {hits}/{near})")
    if args.redis_url:
        from redis.asyncio import Redis

        from eldric.replycache.semantic_redis import RedisIndex
        for n, lookups in ((256, 100), (1000, 50), (10000, 10)):
            r = Redis.from_url(args.redis_url)
            await r.flushdb()
            idx = RedisIndex(r, per_bucket=n)
            us, hits, near = await fill_and_time(idx, n, args.dims, lookups)
            print(f"redis index   {n:>6} entries  dims {args.dims}: {us:10.0f} µs/lookup"
                  f"  (near probes found: {hits}/{near})")
            await idx.close()


if __name__ == "__main__":
    asyncio.run(main())
