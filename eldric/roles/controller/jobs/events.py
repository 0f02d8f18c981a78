"""The job event stream's subscribers (GET /api/v1/models/events): each a bounded
queue, fed the jobs that changed (whole) or were forgotten, at most every PUBLISH_S per
job (the engine batches the changes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import msgspec

from eldric.roles.controller.jobs.table import StoredJob

_enc = msgspec.json.Encoder()


class Subscriber:
    """One event-stream client: a bounded queue of (event, data), None at its end. A
    client too slow to keep up is dropped, and recovers by reconnecting: it gets a
    snapshot first."""

    __slots__ = ("queue", "ended")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=1000)
        self.ended = False

    def put(self, event: str, data: bytes) -> None:
        if self.ended:
            return
        try:
            self.queue.put_nowait((event, data))
        except asyncio.QueueFull:
            self.end()

    def end(self) -> None:
        """No more events: what is queued is dropped, the stream told to end."""
        self.ended = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


def publish(subscribers: Iterable[Subscriber], jobs: Mapping[str, StoredJob],
            ids: Iterable[str]) -> None:
    """A `job` event (the job whole) for each of `ids` still kept, `removed` for the rest."""
    subs = list(subscribers)
    for i in ids:
        job = jobs.get(i)
        event, data = ("job", _enc.encode(job.public())) if job is not None \
            else ("removed", _enc.encode({"id": i}))
        for sub in subs:
            sub.put(event, data)
