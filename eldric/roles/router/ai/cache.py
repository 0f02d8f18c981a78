"""Recent decisions by request shape, so a burst of alike requests asks the model once.

The shape is what the decision rests on, read without decoding the body: the model, the
path, the theme, the body's size (by powers of two), whether it carries tools, and each
candidate with its in-flight count (by powers of two). When a chosen worker fills up,
its count moves to the next power and the shape is new: the model is asked again
rather than a stale choice sending a burst to one worker. Bounded (LRU) and timed (TTL).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable

from eldric.roles.router.context import RouteContext
from eldric.roles.router.pool import Worker

Verdict = tuple[str, str]  # (worker id, reason)


def shape(ctx: RouteContext, candidates: list[Worker]) -> Hashable:
    body = ctx.body
    return (ctx.model, ctx.path, ctx.theme, len(body).bit_length(), b'"tools"' in body,
            tuple(sorted((w.id, w.state.active.bit_length()) for w in candidates)))


class DecisionCache:
    __slots__ = ("size", "ttl", "_entries")

    def __init__(self, size: int, ttl_ms: int) -> None:
        self.size = size
        self.ttl = ttl_ms / 1000
        self._entries: OrderedDict[Hashable, tuple[float, Verdict]] = OrderedDict()

    def get(self, key: Hashable) -> Verdict | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, verdict: Verdict) -> None:
        if self.size == 0:
            return
        self._entries[key] = (time.monotonic() + self.ttl, verdict)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
