"""Request priority between hops: interactive (the default) or batch.

A request the Batch API runs (eldric.batch) carries ``X-Eldric-Priority: batch`` to the
router, which gives it a worker slot only when interactive traffic leaves one idle and
otherwise answers ``503`` with ``Retry-After`` and the code below ("come back later"):
the batch runner waits and sends it again; it is never the request's failure. Anyone
may send the header: it only ever lowers the sender's own priority.
"""

from __future__ import annotations

HEADER = "X-Eldric-Priority"
BATCH = "batch"
DEFERRED = "batch_deferred"  # the router's error code: no idle capacity now
_RAW = HEADER.lower().encode()


def is_batch(raw_headers: object) -> bool:
    """Whether a request's raw (name, value) header pairs mark it batch priority."""
    for name, value in raw_headers:  # type: ignore[attr-defined]
        if name.lower() == _RAW and value.strip().lower() == b"batch":
            return True
    return False
