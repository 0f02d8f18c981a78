"""A stand-in for the usage store (issue 19, U3 replaces it): the records of the last
requests, in memory, bounded. add() never blocks: the request path only appends."""

from __future__ import annotations

from collections import deque

from eldric.roles.edge.usage.record import Record


class Recorder:
    def __init__(self, bound: int = 100_000) -> None:
        self.records: deque[Record] = deque(maxlen=bound)

    def add(self, record: Record) -> None:
        self.records.append(record)
