"""The semantic matcher's index in Redis (`--cache-store redis`): shared across a farm.

Plain Redis (no Redis Stack needed): one hash per bucket (entry key -> float32 vector
bytes) and a sorted set of insertion times to bound it — a lookup is a brute-force scan
of one bucket, which `per_bucket` keeps short. Both expire with the entries' TTL
(refreshed on each add), so a quiet bucket leaves nothing behind. An index entry whose
reply has left the Store is a miss at the Store, never a wrong answer.
"""

from __future__ import annotations

import time
from array import array

from eldric.replycache.semantic import dot


class RedisIndex:
    def __init__(self, redis, *, prefix: str = "eldric:cache:sem:",
                 per_bucket: int = 1000, ttl_s: float = 3600.0) -> None:
        self.redis = redis  # a redis.asyncio.Redis (its own, or shared with the Store)
        self.prefix = prefix
        self.per_bucket = per_bucket
        self.ttl_ms = max(1, int(ttl_s * 1000))

    async def best(self, bucket: str, vec: list[float]) -> tuple[float, str] | None:
        raw = await self.redis.hgetall(self.prefix + bucket + ":v")
        best: tuple[float, str] | None = None
        for key, blob in raw.items():
            found = (dot(vec, array("f", blob)), key.decode() if isinstance(key, bytes) else key)
            if best is None or found > best:
                best = found
        return best

    async def add(self, bucket: str, key: str, vec: list[float]) -> None:
        vkey, okey = self.prefix + bucket + ":v", self.prefix + bucket + ":o"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(vkey, key, array("f", vec).tobytes())
            pipe.zadd(okey, {key: time.time()})
            pipe.pexpire(vkey, self.ttl_ms)
            pipe.pexpire(okey, self.ttl_ms)
            pipe.zcard(okey)
            *_, count = await pipe.execute()
        if count > self.per_bucket:
            old = await self.redis.zpopmin(okey, count - self.per_bucket)
            if old:
                await self.redis.hdel(vkey, *[k for k, _ in old])

    async def close(self) -> None:
        close = getattr(self.redis, "aclose", None) or self.redis.close
        await close()
