"""The op table on its own: bounded history of finished operations, a crashed driver ends
failed (never stuck "pulling"), a finished op_id posted again runs again."""

from __future__ import annotations

import asyncio

from eldric.modelops import ops as ops_mod
from eldric.modelops.ops import OpFailed, Ops
from tests.conftest import until


async def _quick(op) -> None:  # type: ignore[no-untyped-def]
    op.update(state="pulling", completed_bytes=1)


async def test_finished_ops_are_kept_bounded_by_count_and_age(monkeypatch):
    monkeypatch.setattr(ops_mod, "KEEP", 3)
    table = Ops()
    started = [table.start(f"op-{i}", "m", "pull", _quick) for i in range(5)]
    await until(lambda: all(op.done for op in started))
    assert [table.get(f"op-{i}") is not None for i in range(5)] == [False, False, True, True,
                                                                     True]
    monkeypatch.setattr(ops_mod, "KEEP_SECONDS", 0.0)
    await asyncio.sleep(0.01)
    assert table.get("op-4") is None


async def test_a_running_op_is_never_dropped(monkeypatch):
    monkeypatch.setattr(ops_mod, "KEEP", 0)
    table = Ops()
    release = asyncio.Event()

    async def slow(op) -> None:  # type: ignore[no-untyped-def]
        await release.wait()

    running = table.start("op-r", "m", "pull", slow)
    table.start("op-q", "m", "pull", _quick)
    await asyncio.sleep(0.01)
    assert table.get("op-r") is running
    release.set()
    await until(lambda: running.done)


async def test_a_driver_that_raises_ends_failed_with_a_code():
    table = Ops()

    async def crash(op) -> None:  # type: ignore[no-untyped-def]
        raise KeyError("x")

    async def refused(op) -> None:  # type: ignore[no-untyped-def]
        raise OpFailed("no", "checksum_mismatch")

    a = table.start(None, "m", "pull", crash)
    b = table.start(None, "m", "pull", refused)
    await until(lambda: a.done and b.done)
    assert (a.progress.state, a.progress.code) == ("failed", "internal_error")
    assert (b.progress.state, b.progress.code, b.progress.error) == ("failed",
                                                                     "checksum_mismatch", "no")
    assert a.id.startswith("op-") and a.id != b.id


async def test_a_finished_op_id_runs_again():
    table = Ops()
    first = table.start("op-x", "m", "pull", _quick)
    await until(lambda: first.done)
    again = table.start("op-x", "m", "pull", _quick)
    assert again is not first
    await until(lambda: again.done)
    assert table.get("op-x") is again
