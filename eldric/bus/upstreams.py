"""The state of one upstream as this process sees it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


def ewma(prev: float | None, sample: float, alpha: float = 0.2) -> float:
    return sample if prev is None else prev + alpha * (sample - prev)


@dataclass(slots=True)
class UpstreamState:
    id: str
    url: str
    role: str
    healthy: bool = True
    since: float = field(default_factory=time.time)  # when `healthy` last changed
    active: int = 0
    latency_ms: float | None = None  # EWMA of whole-request latency
    ttfb_ms: float | None = None  # EWMA of time to first byte
    load: dict[str, Any] | None = None  # as the upstream last reported it
    models: list[str] = field(default_factory=list)
    consecutive_failures: int = 0
    last_error: str | None = None
    last_check: float | None = None
    requests: int = 0
    failures: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id, "url": self.url, "healthy": self.healthy,
            "since": round(self.since, 3), "active_requests": self.active,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "ttfb_ms": None if self.ttfb_ms is None else round(self.ttfb_ms, 3),
            "load": self.load, "models": self.models,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error, "last_check": self.last_check,
            "requests": self.requests, "failures": self.failures,
        }
