"""Where batches live: SQLite (files, batches, one row per request line) plus each
file's bytes in a directory, both under --data-dir. A line's row is written done in the
same transaction as its result, so a restart never runs a done line twice; a line that
was in flight at a crash is still pending and runs again."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Any

import msgspec

from eldric.batch.objects import LIVE, Batch, FileObject
from eldric.store.sqlite import Store

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS batch_files (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS batch_lines (batch_id TEXT NOT NULL, n INTEGER NOT NULL, "
    "custom_id TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, ok INTEGER, result BLOB, "
    "PRIMARY KEY (batch_id, n))",
)
_enc = msgspec.json.Encoder()


class BatchDB:
    def __init__(self, path: str, files_dir: str) -> None:
        self.store = Store(path, (), SCHEMA)
        self.files_dir = files_dir

    async def open(self) -> None:
        os.makedirs(self.files_dir, exist_ok=True)
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    def path(self, file_id: str) -> str:
        return os.path.join(self.files_dir, file_id)

    # ------------------------------------------------------------------ files
    async def add_file(self, owner: str, f: FileObject, data: bytes) -> None:
        # in a thread: a file up to --batch-max-file-bytes would hold the event loop
        await asyncio.to_thread(self._write, self.path(f.id), data)
        await self.store.run(lambda db: db.execute(
            "INSERT INTO batch_files (id, owner, value) VALUES (?, ?, ?)",
            (f.id, owner, _enc.encode(f))))

    async def file(self, owner: str, file_id: str) -> FileObject | None:
        return await self._owned("batch_files", owner, file_id, FileObject)  # type: ignore[no-any-return]

    async def _owned(self, table: str, owner: str, key: str, kind: Any) -> Any:
        """The row's object when `owner` owns it, else None (another's is as if absent)."""
        rows = await self.store.run(lambda db: list(db.execute(
            f"SELECT value FROM {table} WHERE id = ? AND owner = ?", (key, owner))))
        return msgspec.json.decode(rows[0][0], type=kind) if rows else None

    async def files(self, owner: str, after: str | None, limit: int,
                    purpose: str | None) -> list[FileObject]:
        return [f for f in await self._page("batch_files", owner, after, limit + 1, FileObject)
                if purpose is None or f.purpose == purpose][:limit + 1]

    async def delete_file(self, owner: str, file_id: str) -> bool:
        n = await self.store.run(lambda db: db.execute(
            "DELETE FROM batch_files WHERE id = ? AND owner = ?", (file_id, owner)).rowcount)
        if n:
            try:
                os.remove(self.path(file_id))
            except OSError:
                pass
        return bool(n)

    @staticmethod
    def _write(path: str, data: bytes) -> None:
        tmp = path + ".part"
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, path)

    async def read(self, file_id: str) -> bytes:
        """A file's bytes, read in a thread (it may be hundreds of MiB)."""
        return await asyncio.to_thread(_read, self.path(file_id))

    # ---------------------------------------------------------------- batches
    async def add_batch(self, owner: str, b: Batch, custom_ids: list[str]) -> None:
        def add(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN")
                db.execute("INSERT INTO batches (id, owner, value) VALUES (?, ?, ?)",
                           (b.id, owner, _enc.encode(b)))
                db.executemany("INSERT INTO batch_lines (batch_id, n, custom_id) VALUES (?,?,?)",
                               [(b.id, n, c) for n, c in enumerate(custom_ids)])
        await self.store.run(add)

    async def batch(self, owner: str, batch_id: str) -> Batch | None:
        return await self._owned("batches", owner, batch_id, Batch)  # type: ignore[no-any-return]

    async def batches(self, owner: str, after: str | None, limit: int) -> list[Batch]:
        return await self._page("batches", owner, after, limit + 1, Batch)

    async def save(self, b: Batch) -> None:
        await self.store.run(lambda db: db.execute(
            "UPDATE batches SET value = ? WHERE id = ?", (_enc.encode(b), b.id)))

    async def live(self) -> list[Batch]:
        rows = await self.store.run(lambda db: list(db.execute(
            "SELECT value FROM batches ORDER BY seq")))
        out = [msgspec.json.decode(v, type=Batch) for (v,) in rows]
        return [b for b in out if b.status in LIVE]

    async def _page(self, table: str, owner: str, after: str | None, n: int,
                    kind: Any) -> list[Any]:
        """Newest first (as OpenAI lists them); `after` an id: those older than it."""
        def q(db: sqlite3.Connection) -> list[Any]:
            if after:
                return list(db.execute(
                    f"SELECT value FROM {table} WHERE owner = ? AND seq < "
                    f"(SELECT seq FROM {table} WHERE id = ?) ORDER BY seq DESC LIMIT ?",
                    (owner, after, n)))
            return list(db.execute(f"SELECT value FROM {table} WHERE owner = ? "
                                   "ORDER BY seq DESC LIMIT ?", (owner, n)))
        return [msgspec.json.decode(v, type=kind) for (v,) in await self.store.run(q)]

    # ------------------------------------------------------------------ lines
    async def pending(self, batch_id: str) -> list[int]:
        rows = await self.store.run(lambda db: list(db.execute(
            "SELECT n FROM batch_lines WHERE batch_id = ? AND done = 0 ORDER BY n",
            (batch_id,))))
        return [n for (n,) in rows]

    async def finish_line(self, batch_id: str, n: int, ok: bool, result: bytes) -> None:
        await self.store.run(lambda db: db.execute(
            "UPDATE batch_lines SET done = 1, ok = ?, result = ? WHERE batch_id = ? AND n = ?",
            (int(ok), result, batch_id, n)))

    async def results(self, batch_id: str) -> list[tuple[bool, bytes]]:
        rows = await self.store.run(lambda db: list(db.execute(
            "SELECT ok, result FROM batch_lines WHERE batch_id = ? AND done = 1 ORDER BY n",
            (batch_id,))))
        return [(bool(ok), r) for ok, r in rows]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
