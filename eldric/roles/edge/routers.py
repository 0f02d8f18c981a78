"""The routers behind the edge: health-checked by the role's Prober, tried in turn."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable

from aiohttp import web

from eldric import keys
from eldric.bus import UpstreamState
from eldric.bus.prober import Prober, Verdict, on_bus
from eldric.exchange import Answer, LaneRequest
from eldric.stream import Target, Timeouts, UpstreamFailure, forward
from eldric.stream.failover import Failover
from eldric.stream.sse import Tap


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


async def check(app: web.Application, state: UpstreamState) -> Verdict:
    """A router is up while its /health answers below 500 (degraded is up)."""
    async with app[keys.SESSION].get(state.url + "/health") as r:
        await r.read()
    if r.status >= 500:
        return Verdict(False, f"/health answered HTTP {r.status}")
    return Verdict(True)


def prober(app: web.Application, routers: Routers, interval: float) -> Prober[UpstreamState]:
    """Every router, every health interval. A router that timed out or broke off a reply
    is checked at once too (poke, from the failover): the check decides whether it is
    down (the request may have been the slow part); until then it keeps its place."""
    return Prober("edge-health", functools.partial(check, app), targets=lambda: routers.states,
                  interval=interval, mark=on_bus(app[keys.BUS]), says="health check: ")


class ToRouters(Failover[UpstreamState, Answer]):
    """One request's attempts: the routers in turn (Routers.order), every reply with the
    edge's own headers (rate limits, CORS)."""

    # A router's "not here" says that no worker of the cluster serves the path: another
    # router would say the same, so it is the answer at once.
    not_here_at_once = True

    __slots__ = ("request", "timeouts", "body", "headers", "tap", "rewrite", "drop")

    def __init__(self, request: LaneRequest, routers: Routers, timeouts: Timeouts,
                 body: bytes, headers: dict[str, str], tap: Tap | None = None,
                 rewrite: Callable[[bytes], bytes] | None = None,
                 drop: Callable[[bytes], bool] | None = None) -> None:
        Failover.__init__(self, request.app[keys.BUS], "edge", routers.order(),
                          hop=request[keys.HOP])
        self.request = request
        self.timeouts = timeouts
        self.body = body
        self.headers = headers
        self.tap = tap  # the responses store's and the usage meter's read of a reply
        self.rewrite = rewrite  # the usage meter's: a stream asked for its usage chunk
        self.drop = drop  # … and that chunk taken out again when the client did not ask

    def call(self, state: UpstreamState) -> Awaitable[Answer]:
        request = self.request
        return forward(request, Target(state, state.url), request.path, self.body,
                       timeouts=self.timeouts, reply_headers=self.headers, tap=self.tap,
                       rewrite=self.rewrite, drop=self.drop, span=self.span)

    def state(self, state: UpstreamState) -> UpstreamState:
        return state

    def judge(self, state: UpstreamState, exc: UpstreamFailure) -> None:
        if exc.kind in ("timeout", "closed"):  # down, or was the request the slow part?
            self.request.app[keys.PROBER].poke(state)

    def relay(self, exc: UpstreamFailure) -> web.StreamResponse:
        resp = exc.response()
        resp.headers.update(self.headers)
        return resp
