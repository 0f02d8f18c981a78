"""The edge's usage settings (file section "edge" → "usage"; flags --usage, --usage-…).

U2 (budgets) and U3 (the store) add their fields here."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from eldric.config import Ms
from eldric.fields import flag_meta


class Price(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """US dollars per million tokens. `cached`: prompt tokens read from the backend's
    prompt cache (default: the input price)."""

    input: Annotated[float, msgspec.Meta(ge=0)]
    output: Annotated[float, msgspec.Meta(ge=0)]
    cached: Annotated[float, msgspec.Meta(ge=0)] | None = None


class UsageConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    counting: Annotated[Literal["on", "off"], flag_meta(
        "count tokens and spend per client (off: the request path is as without it, and "
        "no budget is enforced)", flag="usage")] = "on"
    flush_interval_ms: Annotated[Ms, flag_meta(
        "how often counted usage is written to the store, ms",
        flag="usage-flush-interval")] = 2_000
    buffer: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "most usage buckets (client x model x backend x day) waiting in memory between "
        "writes, and request-log rows; past it what needs one more is dropped, counted",
        flag="usage-buffer")] = 100_000
    default_max_tokens: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "the completion tokens reserved against a budget for a request that names no "
        "max_tokens", flag="usage-default-max-tokens")] = 1024
    prices: Annotated[dict[str, Price], flag_meta(
        "model -> {input, output, cached}: US dollars per million tokens, over the built-in "
        "table (a name ending in * is a prefix)", flag="usage-prices")] = {}

    request_log: Annotated[Literal["sqlite", "off"], flag_meta(
        "sqlite: one row per request (time, client, model, worker, status, tokens, cost, "
        "latency, TTFT) in its own file under --data-dir; read it at "
        "/api/v1/usage/requests", flag="request-log")] = "off"
    request_log_days: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "days the request log keeps a row", flag="request-log-days")] = 30
    request_log_bodies: Annotated[bool, flag_meta(
        "keep the request body and a whole reply in the request log, after the filter "
        "plugins' inlet / outlet for the model (redaction)", flag="request-log-bodies")] = False

    @property
    def on(self) -> bool:
        return self.counting == "on"
