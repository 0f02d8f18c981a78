"""What the edge adds to /metrics: auth failures, rate-limit rejections, requests per client."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from eldric.bus.metrics import Cached, LabelGuard


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.auth_failures = Cached(Counter(
            "eldric_edge_auth_failures", "Requests refused for a missing or bad API key",
            ["reason"], registry=registry))
        self.rate_limited = Cached(Counter(
            "eldric_edge_rate_limited", "Requests refused by a rate limit, by tier",
            ["tier"], registry=registry))
        self.client_requests = Cached(Counter(
            "eldric_edge_client_requests", "Requests let through, by client",
            ["client"], registry=registry))
        self.client_label = LabelGuard(1000)
