"""Usage buckets in SQLite under --data-dir (standalone edges).

sqlite3 blocks, so every call runs on one dedicated thread (as eldric/store/sqlite.py
does). Unlike that store, each call opens the file and closes it again: a flush comes
every few seconds, and a connection held open would go on writing to a file that was
moved, deleted or lost its disk under it; opened per call, a store that is gone fails
the flush (kept, retried) and is written again the moment it is back.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from eldric.roles.edge.usage.counts import FIELDS, Counts, Key
from eldric.roles.edge.usage.store import Batch

T = TypeVar("T")

_COUNTERS = ", ".join(FIELDS)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (day TEXT NOT NULL, client TEXT NOT NULL, "
    "model TEXT NOT NULL, backend TEXT NOT NULL, "
    + ", ".join(f"{f} {'REAL' if f == 'cost' else 'INTEGER'} NOT NULL DEFAULT 0" for f in FIELDS)
    + ", PRIMARY KEY (day, client, model, backend))",
    "CREATE TABLE IF NOT EXISTS usage_dropped (day TEXT PRIMARY KEY, n INTEGER NOT NULL)",
)
_ADD = (f"INSERT INTO usage (day, client, model, backend, {_COUNTERS}) "
        f"VALUES (?, ?, ?, ?, {', '.join('?' for _ in FIELDS)}) "
        "ON CONFLICT (day, client, model, backend) DO UPDATE SET "
        + ", ".join(f"{f} = {f} + excluded.{f}" for f in FIELDS))
_DROP = ("INSERT INTO usage_dropped (day, n) VALUES (?, ?) "
         "ON CONFLICT (day) DO UPDATE SET n = n + excluded.n")


class OnOneThread:
    """Calls on a file's own thread, each with a connection opened for it."""

    def __init__(self, path: str, schema: tuple[str, ...], name: str) -> None:
        self.path = path
        self.schema = schema
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._made = False

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=5)
        db.execute("PRAGMA synchronous=NORMAL")
        if not self._made:
            db.execute("PRAGMA journal_mode=WAL")
            for ddl in self.schema:
                try:
                    db.execute(ddl)
                except sqlite3.OperationalError as exc:  # a column added to an older file
                    if not (ddl.startswith("ALTER TABLE") and "duplicate column" in str(exc)):
                        raise
            self._made = True
        return db

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            db = self._connect()
        except sqlite3.Error:
            self._made = False
            raise
        try:
            return fn(db)
        except sqlite3.Error:
            self._made = False  # a file put back may be a new one: make its tables again
            raise
        finally:
            db.close()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)


class SqliteUsage:
    def __init__(self, path: str) -> None:
        self.db = OnOneThread(path, SCHEMA, "eldric-usage")

    async def open(self) -> None:
        try:
            await self.db.run(lambda db: None)
        except sqlite3.Error:
            pass  # the Recorder counts in memory until the file can be written

    async def close(self) -> None:
        await self.db.close()

    async def add(self, batch: Batch) -> None:
        rows = [(*key, *counts.values()) for key, counts in batch.buckets.items()]
        drops = list(batch.dropped.items())

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(_ADD, rows)
                db.executemany(_DROP, drops)

        await self.db.run(write)

    async def buckets(self, first: str, last: str, client: str | None,
                      model: str | None) -> list[tuple[Key, Counts]]:
        sql = (f"SELECT day, client, model, backend, {_COUNTERS} FROM usage "
               "WHERE day BETWEEN ? AND ?")
        args: list[str] = [first, last]
        if client is not None:
            sql, args = sql + " AND client = ?", [*args, client]
        if model is not None:
            sql, args = sql + " AND model = ?", [*args, model]
        rows = await self.db.run(lambda db: db.execute(sql, args).fetchall())
        return [(tuple(r[:4]), Counts(*r[4:])) for r in rows]  # type: ignore[misc]

    async def dropped(self, first: str, last: str) -> int:
        row = await self.db.run(lambda db: db.execute(
            "SELECT COALESCE(SUM(n), 0) FROM usage_dropped WHERE day BETWEEN ? AND ?",
            (first, last)).fetchone())
        return int(row[0])
