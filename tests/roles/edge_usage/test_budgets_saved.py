"""A standalone edge's budget counts in edge.db (usage/budgets_saved.py): written when
changed, read back, and kept in memory when the write fails."""

from __future__ import annotations

from eldric.roles.edge.clients import Client
from eldric.roles.edge.usage.budgets import Budgets
from eldric.roles.edge.usage.budgets_saved import TABLE, Saved
from eldric.roles.edge.usage.record import Tokens
from eldric.store.sqlite import Store


def _store(tmp_path) -> Store:  # type: ignore[no-untyped-def]
    return Store(str(tmp_path / "edge.db"), [TABLE])


async def test_counts_written_read_back_and_kept_when_the_write_fails(tmp_path):
    store = _store(tmp_path)
    await store.open()
    b = Budgets(60_000, 100)
    saved = Saved(store, b.local, 60_000)
    await saved.start()
    c = Client(name="c", max_tokens_per_day=1000)
    hold = await b.reserve(c, "m", 100, prompt=0)
    await b.settle(hold, Tokens(prompt=10, completion=20), None)
    await saved.stop()  # the final flush
    assert [k for k, _ in await store.all(TABLE)] == ["c"]
    await b.reserve(c, "m", 100, prompt=0)
    await store.close()
    await saved.flush()  # the store is gone: nothing lost, tried again later
    assert b.local.dirty == {"c"}

    store = _store(tmp_path)
    await store.open()
    await store.write(TABLE, [("broken", b"not json")])
    again = Budgets(60_000, 100)
    saved = Saved(store, again.local, 60_000)
    await saved.start()  # the unreadable row starts over; the good one is back
    assert (await again.usage([c]))["c"] == {"tokens_today": 30, "cost_today": 0.0,
                                            "cost_month": 0.0}
    await saved.stop()
    await store.close()
