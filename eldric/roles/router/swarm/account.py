"""What a swarm cost and did: the usage summed over every call (members, judge, rounds),
the `eldric` record of each call, and the per-strategy metrics and stats
(GET /api/v1/swarm, /metrics)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram

from eldric.roles.router.swarm.run import Swarm
from eldric.roles.router.swarm.strategy import Final, Generate, Result

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
_ADDED_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def usage_sum(calls: list[Result], extra: dict[str, int] | None = None) -> dict[str, int]:
    out = dict.fromkeys(_USAGE_KEYS, 0)
    for u in [r.usage for r in calls if r.usage] + ([extra] if extra else []):
        for k in _USAGE_KEYS:
            v = u.get(k)
            if isinstance(v, int):
                out[k] += v
    return out


def call_record(r: Result) -> dict[str, Any]:
    rec: dict[str, Any] = {"stage": r.ask.stage, "member": r.ask.index, "model": r.model,
                           "worker": r.worker, "latency_ms": round(r.latency_ms, 1),
                           "outcome": r.outcome}
    if r.usage:
        rec["usage"] = {k: r.usage[k] for k in _USAGE_KEYS if k in r.usage}
    if r.error is not None:
        rec["error"] = r.error
    return rec


def record(swarm: Swarm, final: Final | None, final_call: Result | None) -> dict[str, Any]:
    """The `eldric` field: what the swarm did, call by call, and what it chose."""
    calls = [*swarm.calls, *([final_call] if final_call is not None else [])]
    out: dict[str, Any] = {"swarm": swarm.strategy, "name": swarm.label,
                           "members": [call_record(r) for r in calls],
                           "latency_ms": round((time.perf_counter() - swarm.started) * 1000, 1)}
    if swarm.choice is not None:
        out["choice"] = swarm.choice
    if final is not None:
        out["answer"] = ({"by": "generated", "model": final.ask.member.model,
                          "stage": final.ask.stage} if isinstance(final, Generate) else
                         {"by": "chosen", "member": final.result.ask.index,
                          "model": final.result.model})
        if final.reason:
            out["answer"]["reason"] = final.reason
    return out


class SwarmStats:
    """Per strategy: requests, their outcome, member failures, added latency (the time
    the swarm took beyond its slowest first-round member)."""

    def __init__(self, registry: Any) -> None:
        self.requests = Counter("eldric_swarm_requests", "Swarm requests, by strategy and "
                                "outcome", ["strategy", "outcome"], registry=registry)
        self.member_failures = Counter("eldric_swarm_member_failures", "Swarm member calls "
                                       "that failed, by strategy and outcome",
                                       ["strategy", "outcome"], registry=registry)
        self.added = Histogram("eldric_swarm_added_latency_seconds", "Time a swarm took "
                               "beyond its slowest first-round member", ["strategy"],
                               buckets=_ADDED_BUCKETS, registry=registry)
        self.by_strategy: dict[str, dict[str, Any]] = {}

    def done(self, swarm: Swarm, outcome: str, final_call: Result | None = None) -> None:
        s = self.by_strategy.setdefault(swarm.strategy, {
            "requests": 0, "ok": 0, "failed": 0, "cancelled": 0, "member_failures": 0,
            "added_latency_ms_sum": 0.0})
        s["requests"] += 1
        s[outcome if outcome in ("ok", "failed", "cancelled") else "failed"] += 1
        self.requests.labels(swarm.strategy, outcome).inc()
        calls = [*swarm.calls, *([final_call] if final_call is not None else [])]
        for r in calls:
            if not r.ok and r.outcome != "skipped":
                s["member_failures"] += 1
                self.member_failures.labels(swarm.strategy, r.outcome).inc()
        if outcome == "ok":
            first = [r.latency_ms for r in swarm.calls if r.ask.stage == "answer"]
            total = (time.perf_counter() - swarm.started) * 1000
            added = max(0.0, total - max(first, default=0.0))
            s["added_latency_ms_sum"] += added
            self.added.labels(swarm.strategy).observe(added / 1000)

    def view(self) -> dict[str, Any]:
        out = {}
        for name, s in self.by_strategy.items():
            v = {k: s[k] for k in ("requests", "ok", "failed", "cancelled", "member_failures")}
            v["added_latency_ms_mean"] = round(s["added_latency_ms_sum"] / s["ok"], 1) \
                if s["ok"] else None
            out[name] = v
        return out
