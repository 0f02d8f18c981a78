"""Interactive latency at the router with and without batch-priority load, and batch
throughput on idle capacity.

    PYTHONPATH=. python bench/batch.py [--seconds S] [--delay S] [--cap N] [--interactive R]

A fake worker (tests/fakes/worker.py, each reply after --delay s, --cap concurrent) and a
router on 127.0.0.1 in this process. Interactive: R requests/s (Poisson-ish, fixed gaps)
for S seconds; batch: --batch-clients loops sending X-Eldric-Priority: batch and, on 503
batch_deferred, waiting Retry-After and sending again (as the Batch API's runner does).
Prints interactive p50/p99 ms without and with batch load, and batch req/s admitted.
Driving the edge's /v1/batches instead (after the Batch API lands) is --edge URL: not
written yet.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.conftest import free_port, run_eldric
from tests.fakes import worker as fake_worker
from tests.fakes.worker import KNOBS

BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


async def _interactive(s, url, rate, seconds):  # type: ignore[no-untyped-def]
    took: list[float] = []

    async def one() -> None:
        t0 = time.perf_counter()
        async with s.post(url, json=BODY) as r:
            await r.read()
        took.append((time.perf_counter() - t0) * 1000)

    tasks = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    return took


async def _batch_loop(s, url, stop, done):  # type: ignore[no-untyped-def]
    while not stop.is_set():
        async with s.post(url, json=BODY, headers={"X-Eldric-Priority": "batch"}) as r:
            await r.read()
            if r.status == 503:
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
            elif r.status == 200:
                done[0] += 1


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


async def main(a: argparse.Namespace) -> None:
    app = fake_worker.make_app("w", ["m1"], None)
    app[KNOBS].delay, app[KNOBS].max_concurrency = a.delay, a.cap
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with run_eldric("router", Path(tmp), port=0, bind="127.0.0.1",
                                  workers=f"http://127.0.0.1:{port}") as urls:
                url = urls["router"] + "/v1/chat/completions"
                async with aiohttp.ClientSession() as s:
                    alone = await _interactive(s, url, a.interactive, a.seconds)
                    stop, done = asyncio.Event(), [0]
                    loops = [asyncio.create_task(_batch_loop(s, url, stop, done))
                             for _ in range(a.batch_clients)]
                    t0 = time.monotonic()
                    mixed = await _interactive(s, url, a.interactive, a.seconds)
                    stop.set()
                    await asyncio.gather(*loops)
                    rate = done[0] / (time.monotonic() - t0)
                    done[0] = 0
                    stop = asyncio.Event()
                    loops = [asyncio.create_task(_batch_loop(s, url, stop, done))
                             for _ in range(a.batch_clients)]
                    t0 = time.monotonic()
                    await asyncio.sleep(a.seconds)
                    stop.set()
                    await asyncio.gather(*loops)
                    idle_rate = done[0] / (time.monotonic() - t0)
    finally:
        await runner.cleanup()
    print(f"worker: {a.delay * 1000:.0f} ms/reply, cap {a.cap}; interactive {a.interactive}/s")
    print(f"interactive alone:      p50 {_pct(alone, .5):7.1f} ms  p99 {_pct(alone, .99):7.1f} ms"
          f"  (n={len(alone)})")
    print(f"interactive with batch: p50 {_pct(mixed, .5):7.1f} ms  p99 {_pct(mixed, .99):7.1f} ms"
          f"  (n={len(mixed)}, mean {statistics.mean(mixed):.1f})")
    print(f"batch admitted beside interactive: {rate:.1f} req/s; "
          f"on an otherwise idle worker: {idle_rate:.1f} req/s")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--delay", type=float, default=0.05)
    p.add_argument("--cap", type=int, default=4)
    p.add_argument("--interactive", type=float, default=20)
    p.add_argument("--batch-clients", type=int, default=8)
    asyncio.run(main(p.parse_args()))
