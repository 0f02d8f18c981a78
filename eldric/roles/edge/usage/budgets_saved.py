"""A standalone edge's budget counts kept across restarts (edge.db, table "budgets"):
the day's tokens and cost and the month's cost per client, written every
--usage-flush-interval (only the clients that changed, one transaction) and at shutdown,
read back at start. Never on the request path. In farm mode Redis keeps them."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
import structlog

from eldric.roles.edge.usage.budgets_local import LocalBudgets
from eldric.store.sqlite import Store

log = structlog.get_logger("eldric.edge")
TABLE = "budgets"


class Saved:
    def __init__(self, store: Store, local: LocalBudgets, interval_ms: int) -> None:
        self.store = store
        self.local = local
        self.interval = interval_ms / 1000
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """After the store is open: the counts read back, the writer started."""
        for name, raw in await self.store.all(TABLE):
            try:
                self.local.restore(name, raw)
            except (msgspec.DecodeError, msgspec.ValidationError):  # that one starts over
                log.warning("budget_counts_unreadable", client=name)
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        rows = self.local.saved()
        if not rows:
            return
        try:
            await self.store.write(TABLE, rows)
        except Exception as exc:  # a disk that failed: kept in memory, tried again
            self.local.dirty.update(name for name, _ in rows)
            log.error("budget_counts_not_written", error=f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
