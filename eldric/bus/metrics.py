"""Counters and histograms of one process, rendered as Prometheus text at /metrics.

One CollectorRegistry per Bus (never the global default one), so several buses in one
test process do not collide.
"""

from __future__ import annotations

from prometheus_client import (CollectorRegistry, Gauge, ProcessCollector,
                               disable_created_metrics, generate_latest)

from eldric.bus import lite

# No `*_created` series beside every counter and histogram: they double /metrics and say
# only when the process started. The call, not PROMETHEUS_DISABLE_CREATED_SERIES: that
# variable is read once, when prometheus_client is first imported, by whoever imports it.
# The switch is process-wide and read at scrape time, so the roles' own metrics obey it too.
disable_created_metrics()

# Token streams are slow and long, so the buckets reach minutes.
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                     1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class LabelGuard:
    """Caps distinct values of a client-supplied label (model names) so a client sending
    random names cannot grow /metrics without bound."""

    def __init__(self, limit: int = 200):
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if not value:
            return ""
        if value in self.seen:
            return value
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return "other"


class Cached:
    """A labelled metric whose children are looked up once: prometheus_client's labels()
    validates and locks on every call, which showed up in the hot path's profile. (The
    gauges; counters and histograms updated per request are eldric.bus.lite's.)"""

    __slots__ = ("metric", "_children")

    def __init__(self, metric):  # type: ignore[no-untyped-def]
        self.metric = metric
        self._children: dict[tuple[str, ...], object] = {}

    def labels(self, *values: str):  # type: ignore[no-untyped-def]
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child

    def items(self):  # type: ignore[no-untyped-def]
        """(label values, child) of every child looked up so far: read at a sampler's
        pace without collect(), which builds a sample object per series."""
        return self._children.items()

    def remove(self, *values: str) -> None:
        self._children.pop(values, None)
        try:
            self.metric.remove(*values)
        except KeyError:
            pass


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        self.model_label = LabelGuard()
        self.requests = lite.Counter("eldric_requests", "Requests answered, by route and status",
                                     ["role", "route", "status", "model"], registry=r)
        self.duration = lite.Histogram("eldric_request_duration_seconds",
                                       "Time from request arrival to the end of the reply",
                                       ["role", "route"], registry=r, buckets=_DURATION_BUCKETS)
        self.ttfb = lite.Histogram("eldric_time_to_first_byte_seconds",
                                   "Time from request arrival to the first reply byte sent",
                                   ["role", "route"], registry=r, buckets=_DURATION_BUCKETS)
        self.active = Cached(Gauge("eldric_active_requests", "Requests being handled now",
                                   ["role"], registry=r))
        self.disconnects = lite.Counter("eldric_client_disconnects",
                                        "Clients that went away before their reply ended",
                                        ["role"], registry=r)
        self.upstream_healthy = Cached(Gauge("eldric_upstream_healthy",
                                             "1 if the upstream is healthy, 0 if not",
                                             ["role", "upstream"], registry=r))
        self.upstream_active = Cached(Gauge("eldric_upstream_active_requests",
                                            "Requests in flight to the upstream",
                                            ["role", "upstream"], registry=r))
        self.upstream_requests = lite.Counter("eldric_upstream_requests",
                                              "Requests sent upstream, by outcome",
                                              ["role", "upstream", "outcome"], registry=r)
        self.retries = lite.Counter("eldric_upstream_retries",
                                    "Requests retried on another upstream after this one failed",
                                    ["role", "upstream"], registry=r)
        self.selections = lite.Counter("eldric_route_selections",
                                       "Upstreams chosen, by strategy",
                                       ["role", "strategy", "upstream"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
