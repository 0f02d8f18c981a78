"""A small key/value store per table on SQLite (WAL), used off the event loop.

sqlite3 blocks, so every call runs in one dedicated thread (a single-thread executor keeps
the connection on one thread and the writes in order). Values are bytes (msgspec JSON).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Store:
    """`tables` are key/value tables; `schema` is more DDL, run at open, for a user of
    the store that keeps its own table (eldric.store.responses) and queries it with run()."""

    def __init__(self, path: str, tables: Iterable[str], schema: Iterable[str] = ()) -> None:
        self.path = path
        self.tables = tuple(tables)
        self.schema = tuple(schema)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eldric-sqlite")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                             timeout=5.0)  # the busy timeout: other processes' writes
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a crash of
        # the process (SIGKILL); only a power loss can lose the last transactions.
        for table in self.tables:
            db.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                       "(key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        for ddl in self.schema:
            db.execute(ddl)
        self._db = db

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """fn(connection) on the store's one thread, after every call made before it."""
        assert self._db is not None
        return await self._run(fn, self._db)  # type: ignore[no-any-return]

    def _all(self, table: str) -> list[tuple[str, bytes]]:
        assert self._db is not None
        return list(self._db.execute(f"SELECT key, value FROM {table}"))

    async def all(self, table: str) -> list[tuple[str, bytes]]:
        return await self._run(self._all, table)

    def _write(self, table: str, puts: list[tuple[str, bytes]], deletes: list[str]) -> None:
        assert self._db is not None
        with self._db:  # one transaction for the whole batch
            # IMMEDIATE: the write lock first (waiting up to the connection's 5 s busy
            # timeout), so a writer in another process (--processes) is waited for, never
            # a read lock that cannot be upgraded (SQLITE_BUSY at once)
            self._db.execute("BEGIN IMMEDIATE")
            if puts:
                self._db.executemany(
                    f"INSERT INTO {table} (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value", puts)
            if deletes:
                self._db.executemany(f"DELETE FROM {table} WHERE key = ?",
                                     [(k,) for k in deletes])

    async def write(self, table: str, puts: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
                    deletes: list[str] = ()) -> None:  # type: ignore[assignment]
        await self._run(self._write, table, list(puts), list(deletes))
