"""Budgets kept in this process: standalone edges, and a farm edge while Redis is away.

One entry per client: its tpm window (one [time, tokens] per request, sliding like the
rpm windows), and its tokens and cost of the current UTC day and month. reserve() checks
and takes in one synchronous step (no await between them), so concurrent requests on
one loop see each other's reservations: the overshoot is at most the last reservation.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import msgspec

from eldric.roles.edge.usage.caps import (COST_DAY, COST_MONTH, TOKENS_DAY, TPM, Caps, Period,
                                          Verdict)


@dataclass(slots=True)
class _Spent:
    window: deque[list[float]] = field(default_factory=deque)  # [monotonic s, tokens]
    in_window: int = 0
    day: str = ""
    tokens_day: int = 0
    cost_day: float = 0.0
    month: str = ""
    cost_month: float = 0.0

    def used(self) -> dict[str, float]:
        return {TPM: self.in_window, TOKENS_DAY: self.tokens_day, COST_DAY: self.cost_day,
                COST_MONTH: self.cost_month}

    def roll(self, period: Period) -> None:
        """A new UTC day or month starts from nothing."""
        if self.day != period.day:
            self.day, self.tokens_day, self.cost_day = period.day, 0, 0.0
        if self.month != period.month:
            self.month, self.cost_month = period.month, 0.0


@dataclass(slots=True)
class LocalTicket:
    """What a reservation took here, to be corrected at settle."""

    entry: list[float] | None
    day: str
    month: str


class LocalBudgets:
    def __init__(self, window_ms: int) -> None:
        self.window = window_ms / 1000
        self.spent: dict[str, _Spent] = {}
        self.dirty: set[str] = set()  # changed since budgets_saved last wrote them

    def _slide(self, spent: _Spent, now: float) -> None:
        horizon = now - self.window
        dq = spent.window
        while dq and dq[0][0] <= horizon:
            spent.in_window -= int(dq.popleft()[1])

    def reserve(self, client: str, caps: Caps, tokens: int, cost: float | None,
                period: Period) -> tuple[Verdict, LocalTicket | None]:
        spent = self.spent.get(client)
        if spent is None:
            spent = self.spent[client] = _Spent()
        now = time.monotonic()
        self._slide(spent, now)
        spent.roll(period)
        used = spent.used()
        refused = caps.refusing(used, priced=cost is not None)
        if refused is not None:
            retry = self._tpm_retry(spent, caps, now) if refused == TPM else 0.0
            return caps.verdict(used, refused, retry), None
        self.dirty.add(client)
        entry = None
        if caps.tpm is not None:
            entry = [now, float(tokens)]
            spent.window.append(entry)
            spent.in_window += tokens
        spent.tokens_day += tokens
        if cost is not None:
            spent.cost_day += cost
            spent.cost_month += cost
        return caps.verdict(spent.used()), LocalTicket(entry, period.day, period.month)

    def _tpm_retry(self, spent: _Spent, caps: Caps, now: float) -> float:
        """Seconds until enough of the window slides out for a request to pass again."""
        assert caps.tpm is not None
        left = spent.in_window
        for at, tokens in spent.window:
            left -= int(tokens)
            if left < caps.tpm:
                return max(0.0, at + self.window - now)
        return 0.0

    def settle(self, client: str, ticket: LocalTicket, delta_tokens: int,
               delta_cost: float | None) -> None:
        spent = self.spent.get(client)
        if spent is None:
            return
        self.dirty.add(client)
        entry = ticket.entry
        # still in the window (entries leave it oldest first): it counts what was used
        if entry is not None and spent.window and entry[0] >= spent.window[0][0]:
            entry[1] += delta_tokens
            spent.in_window += delta_tokens
        if spent.day == ticket.day:
            spent.tokens_day += delta_tokens
            if delta_cost is not None:
                spent.cost_day += delta_cost
        if delta_cost is not None and spent.month == ticket.month:
            spent.cost_month += delta_cost

    def spent_by(self, client: str, period: Period) -> tuple[int, float, float]:
        """The client's tokens today, cost today and cost this month, as counted here."""
        spent = self.spent.get(client)
        if spent is None:
            return 0, 0.0, 0.0
        today = spent.day == period.day
        return (spent.tokens_day if today else 0, spent.cost_day if today else 0.0,
                spent.cost_month if spent.month == period.month else 0.0)

    def saved(self) -> list[tuple[str, bytes]]:
        """The day's and month's counts changed since the last call, to be kept (the tpm
        window is not: it is a minute's)."""
        rows = [(name, _saved.encode(_Saved(s.day, s.tokens_day, s.cost_day, s.month,
                                             s.cost_month)))
                for name in self.dirty if (s := self.spent.get(name)) is not None]
        self.dirty.clear()
        return rows

    def restore(self, name: str, raw: bytes) -> None:
        kept = _restored.decode(raw)
        self.spent[name] = _Spent(day=kept.day, tokens_day=kept.tokens_day,
                                  cost_day=kept.cost_day, month=kept.month,
                                  cost_month=kept.cost_month)


class _Saved(msgspec.Struct, array_like=True):
    day: str
    tokens_day: int
    cost_day: float
    month: str
    cost_month: float


_saved = msgspec.json.Encoder()
_restored = msgspec.json.Decoder(_Saved)
