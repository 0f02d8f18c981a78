"""The usage store: Records folded into buckets in memory, written in batches; a store
that is down keeps what fits and counts the rest; both stores (SQLite, Redis) give the
same answers."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from prometheus_client import CollectorRegistry

from eldric.roles.edge.usage.counts import Counts, grouped
from eldric.roles.edge.usage.record import Record, Tokens
from eldric.roles.edge.usage.store import Batch, Recorder
from eldric.roles.edge.usage.store_redis import RedisUsage
from eldric.roles.edge.usage.store_sqlite import SqliteUsage
from tests.conftest import free_port, redis_argv, start_redis, until

DAY1 = 1_796_083_200.0  # 2026-12-01 00:00 UTC
DAY2 = DAY1 + 86_400


def rec(client="app", model="gpt-4o", backend="w1", *, ts=DAY1 + 60, status=200,
        prompt=10, completion=5, cached=0, cost: float | None = 0.001,
        estimated=False) -> Record:
    return Record(ts=ts, client=client, model=model, backend=backend,
                  path="/v1/chat/completions", status=status,
                  tokens=Tokens(prompt, completion, cached, estimated), cost=cost,
                  latency_ms=12.0)


class RedisServer:
    def __init__(self, tmp_path):
        self.port = free_port()
        self.argv = redis_argv(tmp_path, self.port, persist=True)
        self.proc = start_redis(self.argv, self.port)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def start(self):
        self.proc = start_redis(self.argv, self.port)


@contextlib.asynccontextmanager
async def usage_store(kind, tmp_path):
    """(store, down(), up()) for either kind: down() makes the store unwritable."""
    if kind == "sqlite":
        path = str(tmp_path / "usage.db")
        store = SqliteUsage(path)

        def down():  # the file gone, a directory in its place: every open fails
            os.rename(path, path + ".away")
            os.mkdir(path)

        def up():
            os.rmdir(path)
            os.rename(path + ".away", path)

        await store.open()
        try:
            yield store, down, up
        finally:
            await store.close()
    else:
        import redis.asyncio as aioredis

        server = RedisServer(tmp_path)
        r = aioredis.from_url(server.url)
        store = RedisUsage(r, timeout=2.0)
        try:
            yield store, server.stop, server.start
        finally:
            await r.aclose()
            if server.proc.poll() is None:
                server.stop()


KINDS = ["sqlite", "redis"]


@pytest.mark.parametrize("kind", KINDS)
async def test_buckets_sum_per_client_model_backend_day(kind, tmp_path):
    async with usage_store(kind, tmp_path) as (store, _, _):
        recorder = Recorder(store, interval_ms=60_000, bound=100)
        for _ in range(3):
            recorder.add(rec())
        recorder.add(rec(status=502, prompt=0, completion=0, cost=None))
        recorder.add(rec(model="local", cost=None, estimated=True, cached=4))
        recorder.add(rec(ts=DAY2 + 5, client="ops", backend="w2", cost=0.5))
        assert await recorder.flush()
        got = dict(await store.buckets("2026-12-01", "2026-12-02", None, None))
        assert got == {
            ("2026-12-01", "app", "gpt-4o", "w1"): Counts(4, 1, 30, 15, 0, 0.003, 1, 0),
            ("2026-12-01", "app", "local", "w1"): Counts(1, 0, 10, 5, 4, 0.0, 1, 1),
            ("2026-12-02", "ops", "gpt-4o", "w2"): Counts(1, 0, 10, 5, 0, 0.5, 0, 0),
        }
        # a second flush adds to the same buckets
        recorder.add(rec(prompt=1, completion=1))
        assert await recorder.flush()
        got = dict(await store.buckets("2026-12-01", "2026-12-01", "app", "gpt-4o"))
        assert got[("2026-12-01", "app", "gpt-4o", "w1")].prompt_tokens == 31
        assert list(dict(await store.buckets("2026-12-02", "2026-12-02", None, None))) == [
            ("2026-12-02", "ops", "gpt-4o", "w2")]
        by_model = grouped(await store.buckets("2026-12-01", "2026-12-02", None, None),
                           ("model",))
        assert by_model[("gpt-4o",)].requests == 6 and by_model[("local",)].requests == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_store_down_keeps_what_fits_and_counts_the_drops(kind, tmp_path):
    """Down: the buckets waiting keep counting (no memory beyond them); a Record needing
    a new bucket past the bound is dropped and counted (metric, and in the store once
    it is back). Back: everything kept is written, once."""
    async with usage_store(kind, tmp_path) as (store, down, up):
        registry = CollectorRegistry()
        recorder = Recorder(store, interval_ms=60_000, bound=2, registry=registry)
        recorder.add(rec())
        assert await recorder.flush()
        down()
        recorder.add(rec())  # bucket 1 (waiting)
        assert not await recorder.flush()  # refused: kept
        assert recorder.error is not None
        for _ in range(50):
            recorder.add(rec(client="b"))  # bucket 2: fits
        recorder.add(rec(client="c"))  # a third bucket: past the bound
        recorder.add(rec(client="d", ts=DAY2))
        assert not await recorder.flush()
        assert recorder.dropped_total == 2
        assert registry.get_sample_value("eldric_edge_usage_dropped_total") == 2
        up()
        assert await recorder.flush()  # the batch the store refused first
        assert await recorder.flush()  # then what came during the outage, drops too
        assert recorder.error is None and not recorder.pending and recorder.unsent is None
        got = dict(await store.buckets("2026-12-01", "2026-12-02", None, None))
        assert got[("2026-12-01", "app", "gpt-4o", "w1")].requests == 2
        assert got[("2026-12-01", "b", "gpt-4o", "w1")].requests == 50
        assert set(got) == {("2026-12-01", "app", "gpt-4o", "w1"),
                            ("2026-12-01", "b", "gpt-4o", "w1")}
        assert await store.dropped("2026-12-01", "2026-12-01") == 1
        assert await store.dropped("2026-12-01", "2026-12-02") == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_a_batch_sent_again_is_added_once(kind, tmp_path):
    """Redis: the reply of a flush may be lost after the script ran; the retry carries
    the same batch id and adds nothing. (SQLite: a failed transaction added nothing.)"""
    async with usage_store(kind, tmp_path) as (store, _, _):
        batch = Batch()
        batch.buckets[("2026-12-01", "app", "m", "")] = Counts(1, 0, 3, 4, 0, 0.0, 1, 0)
        await store.add(batch)
        if kind == "redis":
            await store.add(batch)
        assert dict(await store.buckets("2026-12-01", "2026-12-01", None, None)) == {
            ("2026-12-01", "app", "m", ""): Counts(1, 0, 3, 4, 0, 0.0, 1, 0)}


async def test_redis_that_hangs_fails_the_flush_and_the_retry_counts_once(tmp_path):
    """A Redis that stops answering (SIGSTOP) fails the flush after the store's timeout
    (the request path never waits on it); the script it ran once woken is not run
    again by the retry."""
    import redis.asyncio as aioredis

    server = RedisServer(tmp_path)
    r = aioredis.from_url(server.url)
    try:
        store = RedisUsage(r, timeout=0.5)
        recorder = Recorder(store, interval_ms=60_000, bound=10)
        recorder.add(rec())
        assert await recorder.flush()
        recorder.add(rec())
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            assert not await recorder.flush()
            assert time.monotonic() - t0 < 5
            started = time.perf_counter()
            recorder.add(rec())  # counted in memory while Redis hangs
            assert time.perf_counter() - started < 0.05
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        await until(recorder.flush, timeout=10, every=0.2)
        await until(recorder.flush, timeout=10, every=0.2)
        got = dict(await store.buckets("2026-12-01", "2026-12-01", None, None))
        assert got[("2026-12-01", "app", "gpt-4o", "w1")].requests == 3
    finally:
        await r.aclose()
        server.stop()


async def test_flushed_every_interval_and_at_shutdown(tmp_path):
    store = SqliteUsage(str(tmp_path / "usage.db"))
    recorder = Recorder(store, interval_ms=300, bound=100)
    await recorder.start()
    recorder.add(rec())
    assert await store.buckets("2026-12-01", "2026-12-01", None, None) == []  # not yet
    await until(lambda: store.buckets("2026-12-01", "2026-12-01", None, None), timeout=5)
    recorder.add(rec(client="late"))
    await recorder.stop()  # the last flush
    again = SqliteUsage(str(tmp_path / "usage.db"))
    await again.open()
    got = dict(await again.buckets("2026-12-01", "2026-12-01", None, None))
    await again.close()
    assert got[("2026-12-01", "late", "gpt-4o", "w1")].requests == 1
    assert got[("2026-12-01", "app", "gpt-4o", "w1")].requests == 1


async def test_shutdown_during_a_flush_writes_its_batch_once(tmp_path):
    """Stopping while a flush is in the store's thread (waiting on a lock another
    connection holds): the flush is let finish, not cancelled (its thread would go on
    and write the batch, and the last flush would write it again)."""
    import asyncio
    import sqlite3

    path = str(tmp_path / "usage.db")
    store = SqliteUsage(path)
    recorder = Recorder(store, interval_ms=20, bound=100)
    await recorder.start()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    recorder.add(rec())
    await asyncio.sleep(0.2)  # the loop's flush now waits for the lock in the thread
    stopping = asyncio.create_task(recorder.stop())
    await asyncio.sleep(0.2)
    other.execute("COMMIT")
    other.close()
    await stopping
    again = SqliteUsage(path)
    await again.open()
    got = dict(await again.buckets("2026-12-01", "2026-12-01", None, None))
    await again.close()
    assert got[("2026-12-01", "app", "gpt-4o", "w1")].requests == 1
