"""The router's load forecaster: its own counters sampled on a timer into one Holt series
per model (eldric.roles.router.predict.holt), and what follows from the forecasts.

Nothing is added to a request's path: the rate of a model is read from the counter the
middleware keeps anyway (eldric_requests, by model, counted when a reply ends), once per
sample, together with the router's in-flight count and its waiting room. What a sample
leaves behind for routing is one dict, worker id -> the request rate expected to reach
that worker (each model's forecast shared among the workers that serve it), which
load_based reads to break a tie (eldric.roles.router.strategies.LoadBased).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client import Counter

from eldric.bus.metrics import Metrics
from eldric.roles.router.pool import Worker
from eldric.roles.router.predict.config import PredictConfig
from eldric.roles.router.predict.holt import Params, Series
from eldric.wire.cluster import ModelForecast

NAME = "holt_damped"  # what the model is (GET /api/v1/predict says so)
HOLD = 6  # samples an anomaly stays flagged after it was confirmed
SUMMARY_MODELS = 10  # models a heartbeat carries, busiest first


class Tracked:
    """One series and its recent history."""

    __slots__ = ("series", "history")

    def __init__(self, params: Params, unit: float, keep: int) -> None:
        self.series = Series(params, unit)
        self.history: deque[float] = deque(maxlen=keep)

    def add(self, y: float) -> bool:
        self.history.append(y)
        return self.series.update(y)


class Forecaster:
    def __init__(self, cfg: PredictConfig, metrics: Metrics, role: str,
                 in_flight: Callable[[], int], queued: Callable[[], int],
                 workers: Callable[[], Iterable[Worker]]) -> None:
        self.cfg = cfg
        self.tie_margin = cfg.tie_margin  # load_based's (strategies.Demand)
        self.interval = cfg.sample_interval_ms / 1000
        self.steps = max(1, round(cfg.horizon_ms / cfg.sample_interval_ms))
        self.params = Params(alpha=cfg.alpha, beta=cfg.beta, phi=cfg.damping, z=cfg.band_z,
                             confirm=cfg.anomaly_samples, horizon=self.steps)
        self._requests = metrics.requests  # by (role, route, status, model)
        self._role = role
        self._in_flight, self._queued, self._workers = in_flight, queued, workers
        self.models: dict[str, Tracked] = {}
        self.untracked: set[str] = set()  # models past max_models (bounded by the label guard)
        self.in_flight = Tracked(self.params, 1.0, cfg.history)
        self.queued = Tracked(self.params, 1.0, cfg.history)
        self.samples = 0
        self.sampled_at: float | None = None  # wall clock of the last sample
        self._totals: dict[str, float] | None = None
        self._at = 0.0
        # worker id -> requests/s expected to reach it next (load_based's tie-break)
        self.demand: dict[str, float] = {}
        self.anomalies = Counter("eldric_router_forecast_anomalies",
                                 "Samples that confirmed a model's rate left its forecast band",
                                 ["model"], registry=metrics.registry)

    # ------------------------------------------------------------------ sampling

    def totals(self) -> dict[str, float]:
        """Requests answered so far per model by this role (any route, any status), from
        the counter's children (collect() cost 2 ms a sample with 200 models)."""
        out: dict[str, float] = {}
        role = self._role
        for (r, _route, _status, model), child in list(self._requests.items()):
            if r == role and model:
                out[model] = out.get(model, 0.0) + child.value
        return out

    def sample(self, now: float | None = None) -> None:
        """One sample of every series (the timer calls it every sample_interval_ms)."""
        now = time.monotonic() if now is None else now
        totals = self.totals()
        prev, self._totals = self._totals, totals
        elapsed, self._at = now - self._at, now
        self.sampled_at = time.time()
        self.in_flight.add(float(self._in_flight()))
        self.queued.add(float(self._queued()))
        if prev is None:  # the first sample is the baseline of the counters
            return
        self.samples += 1
        elapsed = elapsed if elapsed > 0 else self.interval
        for model, total in totals.items():
            tracked = self.models.get(model)
            if tracked is None:
                if len(self.models) >= self.cfg.max_models:
                    self.untracked.add(model)
                    continue
                tracked = self.models[model] = Tracked(self.params, self.interval,
                                                      self.cfg.history)
            if tracked.add(max(0.0, total - prev.get(model, 0.0)) / elapsed):
                self.anomalies.labels(model).inc()
        self.demand = self.shares()

    def shares(self) -> dict[str, float]:
        """Each routable worker's share of the forecast rates of the models it serves."""
        served = [(w.id, set(w.state.models)) for w in self._workers()]
        out = dict.fromkeys((wid for wid, _ in served), 0.0)
        for model, tracked in self.models.items():
            # a worker listing no models serves any (Worker.serves)
            serving = [wid for wid, models in served if not models or model in models]
            if serving:
                each = tracked.series.forecast(1) / len(serving)
                for wid in serving:
                    out[wid] += each
        return out

    # ------------------------------------------------------------------ views

    def minute_steps(self) -> list[tuple[int, int]]:
        """(minutes ahead, samples ahead) for every whole minute of the horizon."""
        per_minute = 60_000 / self.cfg.sample_interval_ms
        minutes = max(1, self.cfg.horizon_ms // 60_000)
        return [(m, min(self.steps, max(1, round(m * per_minute)))) for m in range(1, minutes + 1)]

    def point(self, model: str, tracked: Tracked, minutes: int, h: int) -> ModelForecast:
        s = tracked.series
        low, high = s.band(h)
        return ModelForecast(model=model, observed_rps=round(s.last, 4),
                             expected_rps=round(s.forecast(h), 4), low_rps=round(low, 4),
                             high_rps=round(high, 4), minutes=minutes,
                             anomaly=s.anomalous(HOLD))

    def summary(self) -> list[ModelForecast]:
        """The heartbeat's: the busiest models' next-minute forecasts."""
        (minutes, h), *_ = self.minute_steps()
        busiest = sorted(self.models.items(), key=lambda kv: -kv[1].series.forecast(h))
        return [self.point(m, t, minutes, h) for m, t in busiest[:SUMMARY_MODELS]]
