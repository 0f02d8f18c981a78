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
        "most usage records held in memory between writes (past it they are dropped, "
        "counted)", flag="usage-buffer")] = 100_000
    default_max_tokens: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "the completion tokens reserved against a budget for a request that names no "
        "max_tokens", flag="usage-default-max-tokens")] = 1024
    prices: Annotated[dict[str, Price], flag_meta(
        "model -> {input, output, cached}: US dollars per million tokens, over the built-in "
        "table (a name ending in * is a prefix)", flag="usage-prices")] = {}

    @property
    def on(self) -> bool:
        return self.counting == "on"
