"""The router's `predict` section (strict Struct; flags derived from its fields)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from eldric.config import flag_meta


class PredictConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Load forecasting: expected request rate per model, from the router's own counters."""

    enabled: Annotated[bool, flag_meta(
        "forecast each model's request rate (GET /api/v1/predict, load_based's tie-break)",
        flag="predict")] = True
    sample_interval_ms: Annotated[int, msgspec.Meta(ge=50, le=60_000, extra={"duration": "ms"}), flag_meta(
        "how often the router's counters are sampled into the forecast, ms",
        flag="predict-interval")] = 10_000
    horizon_ms: Annotated[int, msgspec.Meta(ge=60_000, le=3_600_000, extra={"duration": "ms"}), flag_meta(
        "how far ahead the forecast goes (one point a minute), ms",
        flag="predict-horizon")] = 300_000
    history: Annotated[int, msgspec.Meta(ge=10, le=100_000), flag_meta(
        "samples of each series kept (GET /api/v1/predict?history=1)",
        flag="predict-history")] = 360
    max_models: Annotated[int, msgspec.Meta(ge=1, le=1000), flag_meta(
        "models forecast at most (more are counted, not forecast)",
        flag="predict-max-models")] = 200
    alpha: Annotated[float, msgspec.Meta(gt=0, lt=1), flag_meta(
        "level smoothing constant", flag="predict-alpha")] = 0.3
    beta: Annotated[float, msgspec.Meta(ge=0, lt=1), flag_meta(
        "trend smoothing constant", flag="predict-beta")] = 0.05
    damping: Annotated[float, msgspec.Meta(gt=0, le=1), flag_meta(
        "trend damping (1: a straight line on)", flag="predict-damping")] = 0.9
    band_z: Annotated[float, msgspec.Meta(ge=1, le=10), flag_meta(
        "band half-width in standard deviations of the forecast error",
        flag="predict-band-z")] = 3.0
    anomaly_samples: Annotated[int, msgspec.Meta(ge=1, le=100), flag_meta(
        "samples in a row outside the band that make an anomaly",
        flag="predict-anomaly-samples")] = 2
    tie_margin: Annotated[float, msgspec.Meta(ge=0, le=1), flag_meta(
        "load_based scores this close to the best are a tie the forecast breaks",
        flag="predict-tie-margin")] = 0.05
