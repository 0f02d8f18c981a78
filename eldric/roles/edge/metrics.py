"""What the edge adds to /metrics: auth failures, rate-limit rejections, requests, tokens
and spend per client."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from eldric.bus import lite
from eldric.bus.metrics import LabelGuard


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.auth_failures = lite.Counter(
            "eldric_edge_auth_failures", "Requests refused for a missing or bad API key",
            ["reason"], registry=registry)
        self.rate_limited = lite.Counter(
            "eldric_edge_rate_limited", "Requests refused by a rate limit, by tier",
            ["tier"], registry=registry)
        self.client_requests = lite.Counter(
            "eldric_edge_client_requests", "Requests let through, by client",
            ["client"], registry=registry)
        # usage (issue 19): kind is prompt, completion or cached (of prompt)
        self.tokens = lite.Counter(
            "eldric_edge_tokens", "Tokens used, by client, model and kind",
            ["client", "model", "kind"], registry=registry)
        self.cost = lite.Counter(
            "eldric_edge_cost", "Spend in US dollars, by client and model (priced models only)",
            ["client", "model"], registry=registry)
        # budgets (issue 19): kind is tpm, tokens_per_day, cost_per_day, cost_per_month
        # or model (not in allowed_models)
        self.budget_refused = lite.Counter(
            "eldric_edge_budget_refused", "Requests refused by a client's budget, by kind",
            ["kind"], registry=registry)
        self.client_label = LabelGuard(1000)
        self.model_label = LabelGuard(500)  # a client's random model names stay bounded
