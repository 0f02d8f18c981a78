"""Keys and limits through the shared store, surviving its outages.

In farm mode Redis holds the created keys and the rate-limit windows. When Redis cannot
be reached the edge keeps serving rather than failing every request:
- keys: static keys (config, --api-key) still work; a key only Redis knows cannot be
  verified, so it is refused (fail closed: an unverifiable key is not a valid key);
- limits and budgets: each edge falls back to its own in-process windows and counts
  (fail open, per edge), and /health says degraded with the reason. When Redis answers again, shared windows
  resume.
Standalone mode has no outage to survive; this wrapper then just passes through.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from eldric.bus.prober import HEALTHY, Prober, Verdict
from eldric.errors import UpstreamUnavailable
from eldric.roles.edge.clients import Client, Clients
from eldric.roles.edge.limits import Decision, Limiter, LocalLimiter, Tier, new_member

T = TypeVar("T")

log = structlog.get_logger("eldric.edge")


class Farm:
    RETRY_AFTER = 2.0  # seconds between attempts to reach Redis again once it failed
    # While degraded, Redis is asked at least this often whether it is back: its own
    # period, not only the routers' (--health-interval, 10 s, also each router check's
    # deadline), so seeing Redis back soon never needs a short router period, which
    # takes the only router out whenever its /health is slower than that under load.
    RECHECK = 1.0

    def __init__(self, clients: Clients, limiter: Limiter, window_ms: int, shared: bool) -> None:
        self.clients = clients
        self.limiter = limiter
        self.shared = shared
        self.fallback = LocalLimiter(window_ms)
        self.down_since: float | None = None
        self.error: str | None = None
        self._next_try = 0.0
        self._errors: tuple[type[BaseException], ...] = (OSError,)
        if shared:
            import redis.exceptions

            self._errors = (OSError, redis.exceptions.ConnectionError,
                            redis.exceptions.TimeoutError)

    async def _shared(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis call. A pooled connection that Redis closed (it restarted) fails
        once, however healthy Redis is now: that one is retried at once, on a fresh
        connection, before anything counts as an outage. So only idempotent calls come
        here: a lookup, a ping, a limit check under one member (the first try may have
        run in Redis and lost only its reply)."""
        try:
            return await call()
        except self._errors:
            return await call()

    async def admin(self, awaitable: Awaitable[T]) -> T:
        """Run a client-store change (create, list, revoke): those need the store, so an
        outage is a clean 503 rather than a 500. Not retried: a change is not repeated
        on a guess that it did not happen."""
        try:
            result = await awaitable
        except self._errors as exc:
            self._failed(exc)
            raise UpstreamUnavailable("the shared store (Redis) is unreachable; clients "
                                      "cannot be changed until it is back",
                                      code="store_unavailable") from None
        self._ok()
        return result

    @property
    def degraded(self) -> bool:
        return self.down_since is not None

    def _skip(self) -> bool:
        return self.degraded and time.monotonic() < self._next_try

    def _failed(self, exc: BaseException) -> None:
        self._down(f"{type(exc).__name__}: {exc}")

    def _down(self, error: str) -> None:
        self._next_try = time.monotonic() + self.RETRY_AFTER
        if self.down_since is None:
            self.down_since = time.time()
            self.error = error
            log.error("shared_store_unreachable", error=self.error,
                      fallback="static keys only; per-edge rate limits")

    def _ok(self) -> None:
        if self.down_since is not None:
            log.info("shared_store_back", down_s=round(time.time() - self.down_since, 1))
            self.down_since = self.error = None

    async def lookup(self, key: str) -> Client | None:
        if not self.shared:
            return await self.clients.lookup(key)
        static = self.clients.lookup_static(key)
        if static is not None or self._skip():
            return static  # (a static key says nothing about whether Redis is back)
        try:
            client = await self._shared(lambda: self.clients.lookup(key))
        except self._errors as exc:
            self._failed(exc)
            return self.clients.lookup_static(key)
        self._ok()
        return client

    def prober(self, interval: float) -> Prober[Farm]:
        """While degraded, ask Redis every interval (at most RECHECK) whether it is back,
        so /health tells the truth even when no request comes (a request that reaches
        Redis says so too). Only while degraded: a slow answer never makes it so."""
        return Prober("edge-store", Farm.ping, interval=min(interval, self.RECHECK),
                      mark=Farm.marked,
                      targets=lambda: (self,) if self.shared and self.degraded else ())

    async def ping(self) -> Verdict:
        try:
            await self._shared(self.clients.redis.ping)
        except self._errors as exc:  # its client's own errors: the probe failed
            return Verdict(False, f"{type(exc).__name__}: {exc}")
        return HEALTHY

    def marked(self, verdict: Verdict) -> None:
        if verdict.healthy:
            self._ok()
        else:
            self._down(verdict.reason or "unreachable")

    async def check(self, tiers: list[Tier]) -> Decision:
        if not self.shared:
            return await self.limiter.check(tiers)
        member = new_member()  # the retry's too: a request is counted once
        decision, _ = await self.through(lambda: self.limiter.check(tiers, member),
                                         lambda: self.fallback.check(tiers))
        return decision

    async def through(self, call: Callable[[], Awaitable[T]],
                      fallback: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """An idempotent call on the shared store, or this edge's own `fallback` while
        the store is unreachable; and whether the store answered."""
        if self._skip():
            return await fallback(), False
        try:
            result = await self._shared(call)
        except self._errors as exc:
            self._failed(exc)
            return await fallback(), False
        self._ok()
        return result, True
