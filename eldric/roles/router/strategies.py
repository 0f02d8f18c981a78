"""Routing strategies: small objects behind one interface, chosen by name.

``rank(candidates, ctx)`` orders the healthy workers that serve the model, best first
(the router tries them in that order on failure), and says why; ``ctx`` is the request's
RouteContext (eldric.roles.router.context), read only by strategies that look at the
request (cache_aware). ``chosen(worker, ctx)`` is told the worker a request is sent to
(a prefix tree learns what that worker now caches), ``failed(worker, ctx)`` that the
attempt there failed (the tree forgets it again). A strategy that cannot decide falls
back to round robin and says so.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Protocol

from eldric.roles.router.context import RouteContext
from eldric.roles.router.pool import Worker

Ranking = tuple[list[Worker], str]


class Strategy(Protocol):
    name: str

    def rank(self, candidates: Sequence[Worker], ctx: RouteContext | None = None) -> Ranking: ...

    def chosen(self, worker: Worker, ctx: RouteContext) -> None: ...

    def failed(self, worker: Worker, ctx: RouteContext) -> None: ...


class Base:
    """What a strategy that learns nothing from the requests it routes has in common."""

    name = ""

    def chosen(self, worker: Worker, ctx: RouteContext) -> None:
        return None

    def failed(self, worker: Worker, ctx: RouteContext) -> None:
        """The attempt on `worker` (after chosen()) failed: unlearn what it taught."""
        return None


class RoundRobin(Base):
    name = "round_robin"

    def __init__(self) -> None:
        self._turn = itertools.count()

    def rank(self, candidates: Sequence[Worker], ctx: RouteContext | None = None) -> Ranking:
        ordered = sorted(candidates, key=lambda w: w.id)  # a stable ring
        i = next(self._turn) % len(ordered)
        return ordered[i:] + ordered[:i], "round_robin: next in rotation"


class LeastConnections(Base):
    name = "least_connections"

    def __init__(self, fallback: RoundRobin) -> None:
        self._rr = fallback

    def rank(self, candidates: Sequence[Worker], ctx: RouteContext | None = None) -> Ranking:
        rotated, _ = self._rr.rank(candidates)  # ties broken by rotation, not by id
        ordered = sorted(rotated, key=lambda w: w.state.active)
        return ordered, f"least_connections: {ordered[0].state.active} in flight"


def reported_load(w: Worker) -> float | None:
    """0..1 from the worker's last /health report: the busiest of CPU, GPU and GPU memory."""
    load = w.state.load
    if not load:
        return None
    figures = [load.get(k) for k in ("cpu_percent", "gpu_percent", "gpu_memory_percent")]
    known = [f for f in figures if isinstance(f, (int, float))]
    return max(known) / 100 if known else None


class Demand(Protocol):
    """The load forecast (eldric.roles.router.predict.forecaster.Forecaster)."""

    tie_margin: float
    demand: dict[str, float]  # worker id -> requests/s expected to reach it


class LoadBased(Base):
    name = "load_based"
    # Each request this router has in flight counts like 25 % load, so a stale report
    # (reports come every health interval) cannot send everything to one worker.
    INFLIGHT_WEIGHT = 0.25
    # Expected rates closer than this share of the larger are no reason to prefer one.
    DEMAND_DIFFERS = 0.05

    def __init__(self, fallback: RoundRobin) -> None:
        self._rr = fallback
        self.demand: Demand | None = None  # breaks ties among equal scores (None: rotation)

    def rank(self, candidates: Sequence[Worker], ctx: RouteContext | None = None) -> Ranking:
        loads = {w.id: reported_load(w) for w in candidates}
        rotated, _ = self._rr.rank(candidates)  # also the tie-break among equal scores
        if all(v is None for v in loads.values()):
            return rotated, "load_based: no load reports yet; fell back to round_robin"

        def score(w: Worker) -> float:
            reported = loads[w.id]
            return (0.5 if reported is None else reported) + self.INFLIGHT_WEIGHT * w.state.active

        scores = {w.id: score(w) for w in rotated}
        ordered = sorted(rotated, key=lambda w: scores[w.id])
        reason = f"load_based: score {scores[ordered[0].id]:.2f}"
        if self.demand is not None and len(ordered) > 1:
            return self._tie_break(ordered, scores, reason)
        return ordered, reason

    def _tie_break(self, ordered: list[Worker], scores: dict[str, float],
                   reason: str) -> Ranking:
        """Workers scoring within the margin of the best are a tie: the one the forecast
        expects the fewest requests to reach (from the other models it serves) goes first."""
        demand = self.demand
        assert demand is not None
        expected = demand.demand
        if not expected:
            return ordered, reason
        edge = scores[ordered[0].id] + demand.tie_margin
        n = 1
        while n < len(ordered) and scores[ordered[n].id] <= edge:
            n += 1
        if n == 1:
            return ordered, reason
        values = [expected.get(w.id) for w in ordered[:n]]
        if None in values:
            return ordered, reason
        low, high = min(values), max(values)  # type: ignore[type-var]
        if high - low <= self.DEMAND_DIFFERS * high:  # type: ignore[operator]
            return ordered, reason
        tied = sorted(ordered[:n], key=lambda w: expected[w.id])  # stable: rotation stays
        first, last = tied[0], tied[-1]
        return tied + ordered[n:], (
            f"{reason}; tie of {n} broken by the forecast: {expected[first.id]:.2f} req/s "
            f"expected at {first.id}, {expected[last.id]:.2f} at {last.id}")


class LatencyBased(Base):
    name = "latency_based"

    def __init__(self, fallback: RoundRobin) -> None:
        self._rr = fallback

    def rank(self, candidates: Sequence[Worker], ctx: RouteContext | None = None) -> Ranking:
        rotated, _ = self._rr.rank(candidates)
        if all(w.state.ttfb_ms is None for w in rotated):
            return rotated, "latency_based: no latency observed yet; fell back to round_robin"
        # Workers never measured go first, so they get measured at all.
        ordered = sorted(rotated, key=lambda w: -1.0 if w.state.ttfb_ms is None else w.state.ttfb_ms)
        best = ordered[0].state.ttfb_ms
        why = "unmeasured, trying it" if best is None else f"ttfb {best:.1f} ms"
        return ordered, f"latency_based: {why}"


class Random(Base):
    name = "random"

    def rank(self, candidates: Sequence[Worker], ctx: RouteContext | None = None) -> Ranking:
        ordered = list(candidates)
        random.shuffle(ordered)
        return ordered, "random"


def make(name: str, rr: RoundRobin) -> Strategy:
    if name == "round_robin":
        return rr
    if name == "random":
        return Random()
    return STRATEGIES[name](rr)  # type: ignore[call-arg]


STRATEGIES: dict[str, type] = {
    "round_robin": RoundRobin,
    "least_connections": LeastConnections,
    "load_based": LoadBased,
    "latency_based": LatencyBased,
    "random": Random,
}

# cache_aware lives in its own room and needs its config: RouterState makes it (once: its
# prefix trees outlive a switch to another strategy and back). Imported last, since it
# builds on the classes above.
from eldric.roles.router.cache.strategy import CacheAware  # noqa: E402

STRATEGIES["cache_aware"] = CacheAware
