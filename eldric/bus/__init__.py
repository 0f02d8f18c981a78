"""THE in-process health and metrics bus: one per process, shared by every role in it.

It holds the state of every upstream the process knows, the metrics, and the events that
components subscribe to. /health, /api/v1/health and /metrics are rendered from it
(``eldric.bus.routes``) the same way for every role.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from eldric.bus.events import Events
from eldric.bus.metrics import Metrics
from eldric.bus.upstreams import UpstreamState, ewma

if TYPE_CHECKING:
    from eldric.errors import UpstreamFailure

__all__ = ["Bus", "UpstreamState"]

log = structlog.get_logger("eldric.bus")


class Bus:
    def __init__(self) -> None:
        self.events = Events()
        self.metrics = Metrics()
        self.upstreams: dict[str, UpstreamState] = {}
        self.roles: list[str] = []  # every role running in this process

    # ---------------------------------------------------------------- upstream registry

    def upstream(self, id: str, url: str, role: str, healthy: bool = True) -> UpstreamState:
        """The state for an upstream, created in state `healthy` if new."""
        up = self.upstreams.get(id)
        if up is None:
            up = self.upstreams[id] = UpstreamState(id=id, url=url, role=role, healthy=healthy)
            self.metrics.upstream_healthy.labels(role, id).set(1 if healthy else 0)
            # Read at scrape time: no gauge update on every request.
            self.metrics.upstream_active.labels(role, id).set_function(lambda: up.active)
            self.events.emit("upstream_added", upstream=id, url=url, role=role)
        else:
            up.url = url
        return up

    def remove_upstream(self, id: str) -> None:
        up = self.upstreams.pop(id, None)
        if up is not None:
            for gauge in (self.metrics.upstream_healthy, self.metrics.upstream_active):
                gauge.remove(up.role, id)
            self.events.emit("upstream_removed", upstream=id, role=up.role)

    def of_role(self, role: str) -> list[UpstreamState]:
        return [u for u in self.upstreams.values() if u.role == role]

    # ---------------------------------------------------------------- health transitions

    def mark(self, up: UpstreamState, healthy: bool, reason: str | None = None) -> None:
        up.last_check = time.time()
        if healthy:
            up.consecutive_failures = 0
            up.last_error = None
        else:
            up.last_error = reason
        if up.healthy == healthy:
            return
        up.healthy = healthy
        up.since = time.time()
        self.metrics.upstream_healthy.labels(up.role, up.id).set(1 if healthy else 0)
        name = "upstream_healthy" if healthy else "upstream_unhealthy"
        (log.info if healthy else log.warning)(name, upstream=up.id, url=up.url, role=up.role,
                                               reason=reason)
        self.events.emit(name, upstream=up.id, url=up.url, role=up.role, reason=reason)

    def mark_down(self, up: UpstreamState, failure: UpstreamFailure) -> None:
        """Passive health: an upstream that cannot be connected to is out at once. Nothing
        else marks it down here: a slow reply, a broken one or an error status can be
        caused by the request itself (a huge prompt, an input the backend chokes on), and
        a client's request must never take a healthy upstream out of rotation; the
        caller has them confirmed by a health check (the router's passive_mark, the
        edge's Routers.confirm)."""
        if failure.kind == "connect":
            self.mark(up, False, failure.message)

    # ---------------------------------------------------------------- request accounting

    def request_started(self, up: UpstreamState) -> None:
        up.active += 1
        up.requests += 1

    def request_finished(self, up: UpstreamState, outcome: str, *, ttfb: float | None = None,
                         latency: float | None = None) -> None:
        """outcome: ok | error (upstream failed) | client_error (4xx) | unsupported (the
        upstream does not serve the path: 501/405) | cancelled."""
        up.active -= 1
        self.metrics.upstream_requests.labels(up.role, up.id, outcome).inc()
        if outcome == "error":
            up.failures += 1
            up.consecutive_failures += 1
        elif outcome == "ok":
            up.consecutive_failures = 0
        if ttfb is not None:
            up.ttfb_ms = ewma(up.ttfb_ms, ttfb * 1000)
        if latency is not None:
            up.latency_ms = ewma(up.latency_ms, latency * 1000)

    # ---------------------------------------------------------------- summary

    def status(self, role: str) -> str:
        """healthy if every upstream of the role is, unhealthy if none is, else degraded."""
        ups = self.of_role(role)
        if not ups:
            return "healthy"
        up_count = sum(1 for u in ups if u.healthy)
        if up_count == len(ups):
            return "healthy"
        return "unhealthy" if up_count == 0 else "degraded"
