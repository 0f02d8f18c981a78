"""The routers behind the edge: health-checked through the bus, tried in turn."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
from aiohttp import web

from eldric import keys
from eldric.bus import UpstreamState
from eldric.tasks import spawn


class Routers:
    def __init__(self, app: web.Application, urls: list[str]) -> None:
        bus = app[keys.BUS]
        self.states: list[UpstreamState] = [
            bus.upstream(u.rstrip("/"), u.rstrip("/"), role="edge") for u in urls]
        self._turn = itertools.count()
        self._checking: set[str] = set()

    def order(self) -> list[UpstreamState]:
        """Healthy routers first, rotating which one leads (spreads load over routers);
        the unhealthy ones last, so a request still has somewhere to go."""
        n = len(self.states)
        if not n:
            return []
        start = next(self._turn) % n
        rotated = self.states[start:] + self.states[:start]
        return [s for s in rotated if s.healthy] + [s for s in rotated if not s.healthy]


    def confirm(self, app: web.Application, state: UpstreamState, timeout: float) -> None:
        """A router that timed out or broke off a reply is checked now, not at the next
        round: the check decides whether it is down (the request may have been the
        slow part), and until it has, the router stays where it is in the order."""
        if state.id in self._checking:
            return
        self._checking.add(state.id)

        async def run() -> None:
            try:
                await check(app, state, timeout)
            finally:
                self._checking.discard(state.id)

        spawn(run(), name=f"edge-confirm:{state.id}")


async def check(app: web.Application, state: UpstreamState, timeout: float) -> None:
    bus = app[keys.BUS]
    try:
        async with app[keys.SESSION].get(state.url + "/health",
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            await r.read()
            healthy = r.status < 500
            reason = None if healthy else f"/health answered HTTP {r.status}"
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        healthy, reason = False, f"health check: {type(exc).__name__}: {exc}".rstrip(": ")
    bus.mark(state, healthy, reason)


async def health_loop(app: web.Application, routers: Routers, interval: float,
                      also=None) -> None:  # type: ignore[no-untyped-def]
    """Check the routers every interval (and run `also()`: the shared store's probe)."""
    while True:
        await asyncio.gather(*(check(app, s, min(interval, 5.0)) for s in routers.states))
        if also is not None:
            await also()
        await asyncio.sleep(interval)
