"""GET /api/v1/predict: each model's expected request rate for the next minutes, the band
around it, and whether the observed rate left its band; the router's in-flight count and
waiting room, forecast the same way.

    ?model=NAME   one model (404 model_not_found when it has no series)
    ?history=1    the recent samples too (bounded by --predict-history)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import BadRequest, ModelNotFound, NotFound
from eldric.roles.router.predict.forecaster import HOLD, NAME, Forecaster, Tracked
from eldric.roles.router.state import ROUTER

_FLAGS = {"1": True, "true": True, "0": False, "false": False}


def _points(f: Forecaster, t: Tracked, unit: str) -> list[dict[str, Any]]:
    out = []
    for minutes, h in f.minute_steps():
        low, high = t.series.band(h)
        out.append({"minutes": minutes, f"expected{unit}": round(t.series.forecast(h), 4),
                    f"low{unit}": round(low, 4), f"high{unit}": round(high, 4)})
    return out


def series_view(f: Forecaster, t: Tracked, unit: str, history: bool) -> dict[str, Any]:
    s = t.series
    out: dict[str, Any] = {
        f"observed{unit}": round(s.last, 4), "anomaly": s.anomalous(HOLD),
        "anomalies": s.anomalies, "samples": s.n,
        # the band the last sample was judged by (null while warming up)
        "band": None if s.band1 is None or s.n <= s.p.warmup
        else [round(max(0.0, s.band1[0]), 4), round(s.band1[1], 4)],
        "forecast": _points(f, t, unit)}
    if history:
        out[f"history{unit}"] = [round(v, 4) for v in t.history]
    return out


def view(f: Forecaster, model: str | None = None, history: bool = False) -> dict[str, Any]:
    models = f.models if model is None else {model: f.models[model]}
    return {
        "forecaster": NAME, "unit": "requests per second (in flight, queued: requests)",
        "sample_interval_ms": f.cfg.sample_interval_ms, "horizon_ms": f.cfg.horizon_ms,
        "samples": f.samples, "sampled_at": f.sampled_at,
        "models": [{"model": m, **series_view(f, t, "_rps", history)}
                   for m, t in sorted(models.items())],
        "untracked_models": len(f.untracked),
        "router": {"in_flight": series_view(f, f.in_flight, "", history),
                   "queued": series_view(f, f.queued, "", history)},
    }


async def predict(request: web.Request) -> web.Response:
    f = request.app[ROUTER].thinking.forecast
    if f is None:
        raise NotFound("load forecasting is off (--predict)", code="predict_disabled")
    q = request.query
    flag = q.get("history", "0").lower()
    if flag not in _FLAGS:
        raise BadRequest("history must be 1 or 0", param="history")
    model = q.get("model")
    if model is not None and model not in f.models:
        raise ModelNotFound(f"no forecast for the model {model!r}; forecast: "
                            f"{', '.join(sorted(f.models)) or 'none yet'}", param="model")
    return json_response(view(f, model, _FLAGS[flag]))
