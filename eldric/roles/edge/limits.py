"""Exact sliding-window rate limits, tiers in order IP, key, global.

A request is allowed only if every tier has room; then, and only then, it is counted in
every tier (a request refused by one tier is not counted by the others). Sliding windows
keep one timestamp per request, so there is no fixed-window burst of 2x at a boundary.

``LocalLimiter`` keeps the windows in process; ``RedisLimiter`` (farm mode) keeps them in
sorted sets and decides in one Lua script, on Redis's clock, so N edges enforce one limit
exactly. A request is one member of those sets, named once per request (new_member), so a
script run again after its reply was lost counts the request once. Windows are given in
milliseconds, like every interval in eldric.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # farm mode only: redis is an optional dependency
    from redis.asyncio import Redis


@dataclass(slots=True)
class Tier:
    name: str  # ip | key | global
    key: str  # the window's identity, e.g. "ip:10.0.0.7"
    limit: int


@dataclass(slots=True)
class Decision:
    allowed: bool
    tier: str  # the refusing tier, or the tightest one when allowed
    limit: int
    remaining: int
    retry_after: float = 0.0  # seconds until a slot frees (when refused)

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


class Limiter(Protocol):
    async def check(self, tiers: list[Tier], member: str | None = None) -> Decision:
        """Allow and count, or refuse. `member`: the request's entry in shared windows,
        the same when the call is retried (new_member); in one process it needs none."""
        ...


_ME = os.urandom(6).hex()  # other edges count in the same windows
_ids = itertools.count()


def new_member() -> str:
    """A request's entry in the shared windows: unique across edges and requests."""
    return f"{_ME}:{next(_ids)}"


class LocalLimiter:
    def __init__(self, window_ms: int) -> None:
        self.window = window_ms / 1000  # seconds of time.monotonic()
        self.windows: dict[str, deque[float]] = {}
        self._last_sweep = time.monotonic()

    async def check(self, tiers: list[Tier], member: str | None = None) -> Decision:
        now = time.monotonic()
        horizon = now - self.window
        tight: Decision | None = None
        hits = []
        for tier in tiers:
            dq = self.windows.get(tier.key)
            if dq is None:
                dq = self.windows[tier.key] = deque()
            while dq and dq[0] <= horizon:
                dq.popleft()
            if len(dq) >= tier.limit:
                return Decision(False, tier.name, tier.limit, 0, dq[0] + self.window - now)
            remaining = tier.limit - len(dq) - 1
            if tight is None or remaining < tight.remaining:
                tight = Decision(True, tier.name, tier.limit, remaining)
            hits.append(dq)
        for dq in hits:
            dq.append(now)
        if now - self._last_sweep > self.window:
            self._sweep(horizon)
        assert tight is not None
        return tight

    def _sweep(self, horizon: float) -> None:
        """Forget windows that emptied (client IPs come and go)."""
        self._last_sweep = time.monotonic()
        for key in [k for k, dq in self.windows.items() if not dq or dq[-1] <= horizon]:
            del self.windows[key]


# KEYS: one sorted set per tier. ARGV: window (ms), the request's member, then each tier's
# limit. Time comes from Redis (TIME), so edges with skewed clocks share one exact window.
# Idempotent per member: run again for a request it already counted (the first reply was
# lost), the request is not counted against itself, and ZADD NX leaves its entry as is.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local counts = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local c = redis.call('ZCARD', KEYS[i])
  if redis.call('ZSCORE', KEYS[i], ARGV[2]) then c = c - 1 end
  if c >= tonumber(ARGV[2 + i]) then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return {0, i, tonumber(oldest[2]) + window - now, 0}
  end
  counts[i] = c
end
local best, bi = -1, 1
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'NX', now, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], window)
  local rem = tonumber(ARGV[2 + i]) - counts[i] - 1
  if best < 0 or rem < best then best, bi = rem, i end
end
return {1, bi, 0, best}
"""


class RedisLimiter:
    PREFIX = "eldric:rl:"

    def __init__(self, redis: Redis, window_ms: int) -> None:
        self.redis = redis
        self.window_ms = window_ms
        self.script = redis.register_script(_SCRIPT)

    async def check(self, tiers: list[Tier], member: str | None = None) -> Decision:
        allowed, index, wait_ms, remaining = await self.script(
            keys=[self.PREFIX + t.key for t in tiers],
            args=[self.window_ms, member or new_member(), *(t.limit for t in tiers)])
        tier = tiers[int(index) - 1]
        return Decision(bool(allowed), tier.name, tier.limit, int(remaining),
                        max(0.0, int(wait_ms) / 1000))
