"""The Stores (eldric.replycache.Store): memory, a bounded LRU with TTL; Redis, SET PX.
A Redis that fails raises StoreDown: the caller bypasses the cache for that request."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from eldric.replycache.config import CacheConfig

PREFIX = "eldric:rc:"


class StoreDown(Exception):
    """The store could not be read or written: a bypass, never the client's error."""


class MemoryStore:
    """Least recently used first out, bounded by entries and by bytes; an entry past its
    TTL is dropped when met."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.bytes = 0

    async def get(self, key: str) -> bytes | None:
        found = self.entries.get(key)
        if found is None:
            return None
        if found[0] <= time.monotonic():
            self._drop(key)
            return None
        self.entries.move_to_end(key)
        return found[1]

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        if key in self.entries:
            self._drop(key)
        self.entries[key] = (time.monotonic() + ttl_s, value)
        self.bytes += len(value)
        while self.entries and (len(self.entries) > self.max_entries
                                or self.bytes > self.max_bytes):
            self._drop(next(iter(self.entries)))

    def _drop(self, key: str) -> None:
        _, value = self.entries.pop(key)
        self.bytes -= len(value)

    async def close(self) -> None:
        self.entries.clear()
        self.bytes = 0


class RedisStore:
    """Entries shared by a farm: SET with PX (Redis expires them), under one prefix."""

    def __init__(self, redis: Any, owned: bool) -> None:
        self.redis = redis
        self.owned = owned  # made for the cache: closed with it

    async def get(self, key: str) -> bytes | None:
        try:
            return await self.redis.get(PREFIX + key)
        except Exception as exc:  # redis' ConnectionError, TimeoutError, …
            raise StoreDown(repr(exc)) from None

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        try:
            await self.redis.set(PREFIX + key, value, px=max(1, int(ttl_s * 1000)))
        except Exception as exc:
            raise StoreDown(repr(exc)) from None

    async def close(self) -> None:
        if self.owned:
            await self.redis.aclose()


def make_store(cfg: CacheConfig, fallback_url: str | None = None):
    if cfg.store == "memory":
        return MemoryStore(cfg.max_entries, cfg.max_bytes)
    url = cfg.redis_url or fallback_url
    if not url:
        from eldric.errors import ConfigError

        raise ConfigError("--cache-store redis needs --cache-redis-url (or the edge's "
                          "--redis-url)")
    import redis.asyncio as aioredis

    # short timeouts: a Redis that hangs must cost a request little before it bypasses
    return RedisStore(aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5),
                      owned=True)
