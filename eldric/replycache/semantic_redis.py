"""The semantic matcher's index in Redis (`--cache-store redis`): shared across a farm.

Plain Redis (no Redis Stack needed): per bucket a hash of entry key -> float32 vector
bytes, a hash of entry key -> sign bits (the prefilter, semantic.reach) and a sorted set
of insertion times to bound it — a lookup reads the bucket's sign bits, then only the
candidates' vectors, a brute-force scan that `per_bucket` keeps short. Both expire with the entries' TTL
(refreshed on each add), so a quiet bucket leaves nothing behind. An index entry whose
reply has left the Store is a miss at the Store, never a wrong answer.
"""

from __future__ import annotations

import time
from array import array

from eldric.replycache.semantic import dot, reach, signs


class RedisIndex:
    def __init__(self, redis, *, prefix: str = "eldric:cache:sem:",
                 per_bucket: int = 256, ttl_s: float = 3600.0) -> None:
        # a redis.asyncio.Redis (its own, or shared with the Store) in bytes mode
        # (decode_responses=False: the values are float32 and sign-bit bytes)
        self.redis = redis
        self.prefix = prefix
        self.per_bucket = per_bucket
        self.ttl_ms = max(1, int(ttl_s * 1000))

    async def best(self, bucket: str, vec: list[float],
                   floor: float = -1.0) -> tuple[float, str] | None:
        # the sign bits of the whole bucket first (small), then only the candidates'
        # vectors: a bucket's floats never all cross the wire
        marks = await self.redis.hgetall(self.prefix + bucket + ":s")
        bits, limit = signs(vec), reach(len(vec), floor)
        keys = [k for k, b in marks.items()
                if (bits ^ int.from_bytes(b, "little")).bit_count() <= limit]
        if not keys:
            return None
        blobs = await self.redis.hmget(self.prefix + bucket + ":v", keys)
        return max(((dot(vec, array("f", blob)), key.decode())
                    for key, blob in zip(keys, blobs) if blob is not None), default=None)

    async def add(self, bucket: str, key: str, vec: list[float]) -> None:
        base = self.prefix + bucket
        vkey, skey, okey = base + ":v", base + ":s", base + ":o"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(vkey, key, array("f", vec).tobytes())
            pipe.hset(skey, key, signs(vec).to_bytes((len(vec) + 7) // 8, "little"))
            pipe.zadd(okey, {key: time.time()})
            for k in (vkey, skey, okey):
                pipe.pexpire(k, self.ttl_ms)
            pipe.zcard(okey)
            *_, count = await pipe.execute()
        if count > self.per_bucket:
            old = await self.redis.zpopmin(okey, count - self.per_bucket)
            if old:
                gone = [k for k, _ in old]
                await self.redis.hdel(vkey, *gone)
                await self.redis.hdel(skey, *gone)

    async def close(self) -> None:
        close = getattr(self.redis, "aclose", None) or self.redis.close
        await close()
