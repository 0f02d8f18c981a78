"""The routers behind the edge: health-checked through the bus, tried in turn."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
from aiohttp import web

from eldric import keys
from eldric.bus import UpstreamState


class Routers:
    def __init__(self, app: web.Application, urls: list[str]) -> None:
        bus = app[keys.BUS]
        self.states: list[UpstreamState] = [
            bus.upstream(u.rstrip("/"), u.rstrip("/"), role="edge") for u in urls]
        self._turn = itertools.count()

    def order(self) -> list[UpstreamState]:
        """Healthy routers first, rotating which one leads (spreads load over routers);
        the unhealthy ones last, so a request still has somewhere to go."""
        n = len(self.states)
        if not n:
            return []
        start = next(self._turn) % n
        rotated = self.states[start:] + self.states[:start]
        return [s for s in rotated if s.healthy] + [s for s in rotated if not s.healthy]


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
