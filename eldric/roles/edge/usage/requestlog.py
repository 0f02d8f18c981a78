"""The optional request log (--request-log sqlite): one row per request, kept for
--request-log-days, in its own SQLite file under --data-dir (each edge its own, farm
mode too: rows are for looking into one edge's traffic, the totals are the store's).

Rows wait in a bounded list like the usage buckets (past the bound they are dropped and
counted) and are written with the Recorder's flush. Bodies (the request as sent to the
routers, a whole reply as it came back) only with --request-log-bodies, and then only
after the edge's filter plugins' inlet (request) and outlet (reply) for the model have
run over them at flush time, off the request path: a PII filter masks the log too. A
filter that fails or refuses keeps that body out of the log (never written unfiltered).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from eldric.roles.edge.usage.record import Record
from eldric.roles.edge.usage.store_sqlite import OnOneThread

log = structlog.get_logger("eldric.edge.usage")

COLUMNS = ("ts", "client", "model", "backend", "path", "status", "prompt_tokens",
           "completion_tokens", "cached_tokens", "estimated", "cost", "latency_ms", "ttft_ms",
           "stream", "abandoned", "request_body", "reply_body", "cache")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, ts REAL NOT NULL, "
    "client TEXT, model TEXT, backend TEXT, path TEXT, status INTEGER, prompt_tokens INTEGER, "
    "completion_tokens INTEGER, cached_tokens INTEGER, estimated INTEGER, cost REAL, "
    "latency_ms REAL, ttft_ms REAL, stream INTEGER, abandoned INTEGER, request_body TEXT, "
    "reply_body TEXT, cache TEXT)",
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts)",
    # "hit": answered by the response cache (issue 22); added to files made before it
    "ALTER TABLE requests ADD COLUMN cache TEXT",
)
_INSERT = (f"INSERT INTO requests ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")
PRUNE_EVERY = 3600.0  # seconds between deletions of rows past the retention
# The bodies waiting to be written, bytes at most: the rows' bound alone let 100 000
# rows of bodies up to --max-body-size each wait while the file could not be written.
# Past it a row waits without its bodies (its numbers are what the log is for).
BODY_BYTES = 64 * 1024 * 1024

# (hook, model, client, body) -> the body through the filters; raises to keep it out.
Redact = Callable[[str, str, str, bytes], Awaitable[bytes]]


class Row(msgspec.Struct):
    record: Record
    request_body: bytes | None = None
    reply_body: bytes | None = None


class RequestLog:
    def __init__(self, path: str, *, days: int, bound: int, bodies: bool,
                 redact: Redact | None = None, body_bytes: int = BODY_BYTES,
                 prune: bool = True) -> None:
        self.db = OnOneThread(path, SCHEMA, "eldric-requests")
        self.days = days
        self.bound = bound
        self.bodies = bodies
        self.redact = redact
        self.pending: list[Row] = []
        self.dropped = 0
        self.body_bound = body_bytes
        self.body_bytes = 0  # of the bodies in pending
        self.bodies_dropped = 0
        self._pruned = 0.0
        # --processes: every process writes its own requests, only the primary deletes
        # the old ones (one sweep, not N racing each other)
        self.prune = prune

    async def open(self) -> None:
        try:
            await self.db.run(lambda db: None)
        except sqlite3.Error:
            pass  # rows wait (bounded) until the file can be written

    async def close(self) -> None:
        await self.db.close()

    def add(self, record: Record, request_body: bytes | None = None,
            reply_body: bytes | None = None) -> None:
        if len(self.pending) >= self.bound:
            self.dropped += 1
            return
        if not self.bodies:
            request_body = reply_body = None
        elif request_body is not None or reply_body is not None:
            n = _size(request_body, reply_body)
            if self.body_bytes + n > self.body_bound:
                self.bodies_dropped += 1
                request_body = reply_body = None
            else:
                self.body_bytes += n
        self.pending.append(Row(record, request_body, reply_body))

    async def _text(self, hook: str, row: Row, body: bytes | None) -> str | None:
        if body is None:
            return None
        if self.redact is not None:
            try:
                body = await self.redact(hook, row.record.model, row.record.client, body)
            except Exception as exc:  # a closed filter's failure, a refusal: not logged
                log.warning("request_log_body_withheld", hook=hook, error=str(exc))
                return None
        return body.decode("utf-8", "replace")

    async def flush(self) -> None:
        if not self.pending:
            await self._prune()
            return
        rows, self.pending, self.body_bytes = self.pending, [], 0
        values = []
        for row in rows:
            r, t = row.record, row.record.tokens
            values.append((r.ts, r.client, r.model, r.backend, r.path, r.status, t.prompt,
                           t.completion, t.cached, int(t.estimated), r.cost, r.latency_ms,
                           r.ttft_ms, int(r.stream), int(r.abandoned),
                           await self._text("inlet", row, row.request_body),
                           await self._text("outlet", row, row.reply_body),
                           r.cache or None))
        try:
            await self.db.run(lambda db: db.executemany(_INSERT, values))
        except sqlite3.Error as exc:
            keep = rows[:max(0, self.bound - len(self.pending))]
            self.dropped += len(rows) - len(keep)
            self.pending[:0] = keep  # in order, ahead of what came meanwhile
            self.body_bytes += sum(_size(r.request_body, r.reply_body) for r in keep)
            log.error("request_log_unwritable", error=str(exc), waiting=len(self.pending))
            return
        await self._prune()

    async def _prune(self) -> None:
        now = time.time()
        if not self.prune or now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        horizon = now - self.days * 86_400
        try:
            await self.db.run(lambda db: db.execute("DELETE FROM requests WHERE ts < ?",
                                                    (horizon,)))
        except sqlite3.Error:
            self._pruned = 0.0  # tried again at the next flush

    async def rows(self, *, since: float, until: float, client: str | None,
                   model: str | None, limit: int) -> list[dict]:
        sql = f"SELECT {', '.join(COLUMNS)} FROM requests WHERE ts >= ? AND ts < ?"
        args: list[object] = [since, until]
        if client is not None:
            sql, args = sql + " AND client = ?", [*args, client]
        if model is not None:
            sql, args = sql + " AND model = ?", [*args, model]
        sql += " ORDER BY ts DESC, id DESC LIMIT ?"
        found = await self.db.run(lambda db: db.execute(sql, [*args, limit]).fetchall())
        out = []
        for values in found:
            row = dict(zip(COLUMNS, values))
            for flag in ("estimated", "stream", "abandoned"):
                row[flag] = bool(row[flag])
            out.append(row)
        return out


def _size(*bodies: bytes | None) -> int:
    return sum(len(b) for b in bodies if b is not None)
