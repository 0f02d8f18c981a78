"""Usage accounting per backend and model, on /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from eldric.bus import lite
from eldric.bus.metrics import LabelGuard


class CloudMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = lite.Counter("eldric_cloud_requests", "Requests sent to a backend",
                                     ["backend", "model"], registry=registry)
        self.errors = lite.Counter("eldric_cloud_errors", "Requests a backend failed",
                                   ["backend", "model"], registry=registry)
        self.tokens = lite.Counter("eldric_cloud_tokens", "Tokens used, as backends report",
                                   ["backend", "model", "kind"], registry=registry)
        self.model_label = LabelGuard(500)
        # backend -> model -> [requests, errors, prompt, completion], for the dashboard
        self.usage: dict[str, dict[str, list[int]]] = {}

    def _row(self, backend: str, model: str) -> list[int]:
        return self.usage.setdefault(backend, {}).setdefault(model, [0, 0, 0, 0])

    def request(self, backend: str, model: str) -> None:
        self.requests.labels(backend, self.model_label(model)).inc()
        self._row(backend, model)[0] += 1

    def error(self, backend: str, model: str) -> None:
        self.errors.labels(backend, self.model_label(model)).inc()
        self._row(backend, model)[1] += 1

    def count_tokens(self, backend: str, model: str, prompt: int, completion: int) -> None:
        label = self.model_label(model)
        self.tokens.labels(backend, label, "prompt").inc(prompt)
        self.tokens.labels(backend, label, "completion").inc(completion)
        row = self._row(backend, model)
        row[2] += prompt
        row[3] += completion
