"""Session affinity: the requests of one session go to one worker (its prompt cache).

The session is named by a header (`--session-key X-Session-ID`) or by the body's `user`
field (`--session-key user`). A new session goes where rendezvous hashing (consistent
hashing: a worker joining or leaving moves only its share) puts it among the candidates
that have room, so routers that share nothing agree; the table then remembers where it
went (bounded, least recently seen dropped first; forgotten after the TTL). A session
stays while its worker is a candidate (healthy, serving the model), not failing, has room
and is not over its load guard: SGLang's imbalance test against the idlest candidate.
Otherwise it moves (to the next worker its hash prefers), and the move is counted by
reason in /metrics (eldric_session_moves_total).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict

from prometheus_client import Counter, Gauge

from eldric.roles.router.cache.config import CacheAwareConfig
from eldric.roles.router.cache.strategy import imbalanced
from eldric.roles.router.context import RouteContext
from eldric.roles.router.pool import Worker, WorkerPool

_MAX_KEY = 256  # longer session names are kept as their digest
REASONS = ("gone", "unhealthy", "failing", "full", "imbalanced", "failed")


def _score(key: bytes, worker_id: str) -> bytes:
    return hashlib.blake2b(key + b"\0" + worker_id.encode(), digest_size=8).digest()


def rendezvous(key: str, workers: list[Worker]) -> Worker | None:
    """The worker this session hashes to: the highest score of (key, worker id)."""
    if not workers:
        return None
    raw = key.encode()
    return max(workers, key=lambda w: _score(raw, w.id))


class Sessions:
    """The Affinity of eldric.roles.router.thinking."""

    def __init__(self, cfg: CacheAwareConfig, pool: WorkerPool, cap: int | None,
                 registry: object) -> None:
        self.cfg = cfg
        self.pool = pool
        self.cap = cap
        self.header = None if cfg.session_key == "user" else cfg.session_key
        self.ttl = cfg.session_ttl_ms / 1000
        self.table: OrderedDict[str, list] = OrderedDict()  # key -> [worker id, last seen]
        moves = Counter("eldric_session_moves", "Sessions moved to another worker, by "
                        "why (gone, unhealthy, failing, full, imbalanced, failed)", ["reason"],
                        registry=registry)
        self.moves = {r: moves.labels(r) for r in REASONS}
        self.size = Gauge("eldric_sessions", "Sessions remembered", registry=registry)

    def key(self, ctx: RouteContext) -> str | None:
        if self.header is not None:
            key = ctx.header(self.header)
        else:
            doc = ctx.document()
            key = doc.get("user") if doc else None
            if not isinstance(key, str):
                return None
        if not key:
            return None
        if len(key) > _MAX_KEY:
            key = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        return key

    def problem(self, w: Worker | None, candidates: list[Worker]) -> str | None:
        """Why a session may not stay on w now; None when it may."""
        if w is None:  # left the pool
            return "gone"
        if not w.state.healthy:
            return "unhealthy"
        if w not in candidates:
            return "gone"  # no longer serves the model or the path
        if w.suspect_until > time.monotonic():
            return "failing"
        if not w.has_room(self.cap):
            return "full"
        least = min(c.state.active for c in candidates)
        if imbalanced(w.state.active, least, self.cfg):
            return "imbalanced"
        return None

    def prefer(self, candidates: list[Worker], ctx: RouteContext) -> bool:
        """The session's worker as ctx.prefer; True when the session stays there (False:
        new or moving, placed by hashing unless the AI, asked next, picks)."""
        key = self.key(ctx)
        if key is None or not candidates:
            return False
        entry = self.table.get(key)
        if entry is not None and time.monotonic() - entry[1] > self.ttl:
            entry = None
        if entry is not None:
            why = self.problem(self.pool.workers.get(entry[0]), candidates)
            if why is None:
                ctx.prefer, ctx.decided_by = entry[0], "session"
                ctx.prefer_reason = f"session: stays on {entry[0]}"
                return True
        ok = [c for c in candidates if self.problem(c, candidates) is None]
        target = rendezvous(key, ok)
        if target is None:
            return False  # nowhere fit: the strategy decides, chosen() counts the move
        ctx.prefer, ctx.decided_by = target.id, "session"
        ctx.prefer_reason = (f"session: new, hashed to {target.id}" if entry is None else
                             f"session: moved from {entry[0]} ({why}) to {target.id}")
        return False

    def chosen(self, worker: Worker, ctx: RouteContext) -> None:
        key = self.key(ctx)
        if key is None:
            return
        now = time.monotonic()
        entry = self.table.get(key)
        if entry is None:
            self.table[key] = [worker.id, now]
            if len(self.table) > self.cfg.max_sessions:
                self.table.popitem(last=False)
            self.size.set(len(self.table))
            return
        if entry[0] != worker.id and now - entry[1] <= self.ttl:
            old = self.pool.workers.get(entry[0])
            why = self.problem(old, [worker, old]) if old is not None else "gone"
            # it was fine a moment ago and still is: its attempt failed, or the
            # strategy had to pick when nowhere fit
            self.moves[why or "failed"].inc()
        entry[0], entry[1] = worker.id, now
        self.table.move_to_end(key)

    def sweep(self) -> int:
        """Drop sessions unseen for the TTL (the table is in order of last use)."""
        cutoff = time.monotonic() - self.ttl
        dropped = 0
        while self.table:
            key, entry = next(iter(self.table.items()))
            if entry[1] > cutoff:
                break
            del self.table[key]
            dropped += 1
        self.size.set(len(self.table))
        return dropped
