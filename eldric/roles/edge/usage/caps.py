"""A client's budgets as numbers to check, the answer of a check, and the UTC calendar.

Shared by the in-process budgets and the farm's: both count the same four amounts and
decide the same way. A budget is spent once what is counted reaches it: a request is let
through while its client is under every budget, and its whole reservation is counted, so
a burst at the boundary overshoots by at most the last reservation let through (a
reservation larger than a budget still passes once, on a fresh window or day).
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field

from eldric.roles.edge.clients import Client

# The kinds, in the order they are checked: the first one spent is the one named.
TPM, TOKENS_DAY, COST_DAY, COST_MONTH = "tpm", "tokens_per_day", "cost_per_day", "cost_per_month"
COST_KINDS = (COST_DAY, COST_MONTH)


@dataclass(slots=True, frozen=True)
class Period:
    """The UTC day and month a reservation counts in, and the seconds left in each."""

    day: str  # 2026-12-01
    month: str  # 2026-12
    day_left: float
    month_left: float

    @classmethod
    def now(cls, at: float | None = None) -> Period:
        at = time.time() if at is None else at
        t = time.gmtime(at)
        midnight = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        first = calendar.timegm((year, month, 1, 0, 0, 0))
        return cls(f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}",
                   f"{t.tm_year:04d}-{t.tm_mon:02d}", midnight - at, first - at)


@dataclass(slots=True)
class Verdict:
    allowed: bool
    kind: str | None = None  # the spent budget (refused)
    retry_after: float = 0.0  # seconds (tpm: until the window frees; else the period's end)
    remaining: dict[str, float] = field(default_factory=dict)  # kind -> left, after it

    def header(self) -> str:
        """X-Eldric-Budget-Remaining: every budget the client has, what is left of it
        after this request's reservation: `tpm=900, tokens_per_day=9000,
        cost_per_day=0.42` (tokens; cost in the price table's USD)."""
        return ", ".join(f"{k}={_amount(k, v)}" for k, v in self.remaining.items())


def _amount(kind: str, left: float) -> str:
    left = max(0.0, left)
    if kind in COST_KINDS:
        return f"{left:.6f}".rstrip("0").rstrip(".") or "0"
    return str(int(left))


@dataclass(slots=True, frozen=True)
class Caps:
    tpm: int | None
    tokens_per_day: int | None
    cost_per_day: float | None
    cost_per_month: float | None

    @classmethod
    def of(cls, client: Client) -> Caps | None:
        """None when the client has no budget to count (allowed_models is no count)."""
        if (client.tpm is None and client.max_tokens_per_day is None
                and client.max_cost_per_day is None and client.max_cost_per_month is None):
            return None
        return cls(client.tpm, client.max_tokens_per_day, client.max_cost_per_day,
                   client.max_cost_per_month)

    def limits(self) -> dict[str, float | None]:
        return {TPM: self.tpm, TOKENS_DAY: self.tokens_per_day, COST_DAY: self.cost_per_day,
                COST_MONTH: self.cost_per_month}

    def refusing(self, used: dict[str, float], *, priced: bool) -> str | None:
        """The first budget already spent, or None. An unpriced model's request spends
        tokens only: cost budgets do not stop it."""
        for kind, limit in self.limits().items():
            if limit is None or (kind in COST_KINDS and not priced):
                continue
            if used[kind] >= limit:
                return kind
        return None

    def verdict(self, used: dict[str, float], refused: str | None = None,
                retry_after: float = 0.0) -> Verdict:
        remaining = {k: limit - used[k] for k, limit in self.limits().items()
                     if limit is not None}
        return Verdict(refused is None, refused, retry_after, remaining)
