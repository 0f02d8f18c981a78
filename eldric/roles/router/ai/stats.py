"""What AI routing did: counts by outcome, agreement in advisory mode, decision latency
(GET /api/v1/ai/status, and eldric_ai_* in /metrics). Made once per router, so counts
survive a POST /api/v1/ai/configure (as Prometheus counters do)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from prometheus_client import Counter, Histogram

# Why the strategy routed although an LLM was asked: each counts as a fall-back.
FALLBACKS = ("timeout", "invalid", "failed", "busy")
# Recent asked decisions whose latency the percentiles are taken over.
WINDOW = 2048
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10)


class AiStats:
    def __init__(self, registry: Any) -> None:
        self.counts: dict[str, int] = dict.fromkeys(
            ("asked", "decisions", "cache_hits", "agreements", "disagreements", *FALLBACKS), 0)
        self.latencies: deque[float] = deque(maxlen=WINDOW)  # ms, asked decisions only
        self.last: dict[str, Any] | None = None  # the last verdict or fall-back, for status
        self._outcomes = Counter("eldric_ai_decisions", "AI routing decisions by outcome "
                                 "(decided, cached, timeout, invalid, failed, busy)",
                                 ["outcome"], registry=registry)
        self._advice = Counter("eldric_ai_advice", "Advisory AI picks compared with the "
                               "worker routed to", ["agreed"], registry=registry)
        self._seconds = Histogram("eldric_ai_decision_seconds", "Time an asked AI decision "
                                  "took (to its deadline at most)", buckets=_BUCKETS,
                                  registry=registry)

    def count(self, outcome: str) -> None:
        """decided | cached | one of FALLBACKS."""
        if outcome == "decided":
            self.counts["decisions"] += 1
        elif outcome == "cached":
            self.counts["decisions"] += 1
            self.counts["cache_hits"] += 1
        else:
            self.counts[outcome] += 1
        self._outcomes.labels(outcome).inc()

    def asking(self) -> None:
        self.counts["asked"] += 1

    def took(self, ms: float) -> None:
        self.latencies.append(ms)
        self._seconds.observe(ms / 1000)

    def advice(self, agreed: bool) -> None:
        self.counts["agreements" if agreed else "disagreements"] += 1
        self._advice.labels("yes" if agreed else "no").inc()

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        out["fallbacks"] = sum(self.counts[k] for k in FALLBACKS)
        out["invalid_answers"] = out.pop("invalid")
        out["timeouts"] = out.pop("timeout")
        out["latency_ms"] = percentiles(list(self.latencies))
        out["last"] = self.last
        return out


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50/p99 (nearest rank) of recent decisions, and how many they are over."""
    if not values:
        return {"p50": None, "p99": None, "count": 0}
    values.sort()

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))], 3)

    return {"p50": at(0.50), "p99": at(0.99), "count": len(values)}
