"""The router's `predict` section (strict Struct; flags derived from its fields)."""

from __future__ import annotations

import msgspec


class PredictConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Load forecasting: expected request rate per model, from the router's own counters."""
