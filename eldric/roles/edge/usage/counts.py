"""The counters kept per client × model × backend × UTC day, and how rows are grouped.

One shape for every part: the Recorder folds Records into Counts, the stores add them
to what they hold, the usage API sums them by the columns asked for.
"""

from __future__ import annotations

import time

from eldric.roles.edge.usage.record import Record

# A bucket's key: (day, client, model, backend); the day is UTC, "2026-12-01".
Key = tuple[str, str, str, str]
KEY_COLUMNS = ("day", "client", "model", "backend")
# The counters, in the order the stores keep them (the API's names: prompt_tokens, …).
FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens",
          "cost", "unpriced_requests", "estimated_requests")


# The UTC day last asked for, as [its first second, the next day's, its name]: every
# request is counted under its day, and strftime(gmtime()) was ~1.5 us of each.
_day: list = [0.0, 0.0, ""]


def day_of(ts: float) -> str:
    day = _day
    if day[0] <= ts < day[1]:
        return day[2]
    name = time.strftime("%Y-%m-%d", time.gmtime(ts))
    start = ts - ts % 86400  # UTC days are 86400 s apart (POSIX time has no leap seconds)
    _day[:] = [start, start + 86400, name]
    return name


def key_of(record: Record) -> Key:
    return (day_of(record.ts), record.client, record.model, record.backend)


class Counts:
    """One bucket's counters. `cost` sums the priced requests only; `unpriced_requests`
    counts the others (their model has no price), so a row of only those costs None."""

    __slots__ = FIELDS

    def __init__(self, requests: int = 0, errors: int = 0, prompt_tokens: int = 0,
                 completion_tokens: int = 0, cached_tokens: int = 0, cost: float = 0.0,
                 unpriced_requests: int = 0, estimated_requests: int = 0) -> None:
        self.requests, self.errors = requests, errors
        self.prompt_tokens, self.completion_tokens = prompt_tokens, completion_tokens
        self.cached_tokens, self.cost = cached_tokens, cost
        self.unpriced_requests, self.estimated_requests = unpriced_requests, estimated_requests

    def count(self, record: Record) -> None:
        self.requests += 1
        self.errors += record.status >= 400
        t = record.tokens
        self.prompt_tokens += t.prompt
        self.completion_tokens += t.completion
        self.cached_tokens += t.cached
        self.estimated_requests += t.estimated
        if record.cost is None:
            self.unpriced_requests += 1
        else:
            self.cost += record.cost

    def merge(self, other: Counts) -> None:
        for f in FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def values(self) -> tuple:
        return tuple(getattr(self, f) for f in FIELDS)

    def public(self) -> dict:
        """The API's counters: cost None when every request counted here was unpriced
        (0 when there were none)."""
        out = {f: getattr(self, f) for f in FIELDS if f != "unpriced_requests"}
        unpriced = self.requests and self.unpriced_requests == self.requests
        out["cost"] = None if unpriced else round(self.cost, 10)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counts) and self.values() == other.values()

    def __repr__(self) -> str:
        return f"Counts{self.values()}"


def grouped(buckets: list[tuple[Key, Counts]], by: tuple[str, ...]) -> dict[tuple, Counts]:
    """Buckets summed by the key columns in `by` (KEY_COLUMNS' names)."""
    at = [KEY_COLUMNS.index(c) for c in by]
    out: dict[tuple, Counts] = {}
    for key, counts in buckets:
        g = tuple(key[i] for i in at)
        if (row := out.get(g)) is None:
            row = out[g] = Counts()
        row.merge(counts)
    return out
