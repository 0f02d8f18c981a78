"""Routing strategies: small objects behind one interface, chosen by name.

``rank(candidates, ctx)`` orders the healthy workers that serve the model, best first
(the router tries them in that order on failure), and says why; ``ctx`` is the request's
RouteContext (eldric.roles.router.context), read only by strategies that look at the
request (cache_aware). ``chosen(worker, ctx)`` is told the worker a request is sent to
(a prefix tree learns what that worker now caches). A strategy that cannot decide falls
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


class Base:
    """What a strategy that learns nothing from the requests it routes has in common."""

    name = ""

    def chosen(self, worker: Worker, ctx: RouteContext) -> None:
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


class LoadBased(Base):
    name = "load_based"
    # Each request this router has in flight counts like 25 % load, so a stale report
    # (reports come every health interval) cannot send everything to one worker.
    INFLIGHT_WEIGHT = 0.25

    def __init__(self, fallback: RoundRobin) -> None:
        self._rr = fallback

    def rank(self, candidates: Sequence[Worker], ctx: RouteContext | None = None) -> Ranking:
        loads = {w.id: reported_load(w) for w in candidates}
        rotated, _ = self._rr.rank(candidates)  # also the tie-break among equal scores
        if all(v is None for v in loads.values()):
            return rotated, "load_based: no load reports yet; fell back to round_robin"

        def score(w: Worker) -> float:
            reported = loads[w.id]
            return (0.5 if reported is None else reported) + self.INFLIGHT_WEIGHT * w.state.active

        ordered = sorted(rotated, key=score)
        return ordered, f"load_based: score {score(ordered[0]):.2f}"


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
