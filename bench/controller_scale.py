"""Controller scale check (a benchmark, not a test).

`python bench/controller_scale.py [--workers 500] [--duration 60]`

Starts a real controller (its own process, JSON access log on, on 127.0.0.1), registers N
simulated workers, then has each heartbeat once a second (jittered, as real workers drift)
for the duration; prints heartbeat latency p50/p99/max, errors, and the controller's CPU
and RSS. Bounded in time and count; stops the controller it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

import aiohttp
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body(i: int) -> dict:
    return {"worker_type": "inference", "url": f"http://10.0.{i // 250}.{i % 250}:8890",
            "models": ["llama3.2:3b", f"model-{i % 7}"], "tags": ["gpu"],
            "load": {"cpu_percent": 20.0, "memory_percent": 30.0, "active_requests": 0}}


async def worker(s: aiohttp.ClientSession, base: str, i: int, stop_at: float,
                 lat: list[float], errors: list[str]) -> None:
    async with s.post(base + "/api/v1/workers/register", json=body(i)) as r:
        wid = (await r.json())["id"]
    await asyncio.sleep(random.random())  # spread the first beats over a second
    beat = {"status": "healthy", "models": body(i)["models"],
            "load": {"cpu_percent": 20.0, "memory_percent": 30.0, "active_requests": 1}}
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        try:
            async with s.post(f"{base}/api/v1/workers/{wid}/heartbeat", json=beat) as r:
                await r.read()
                if r.status != 200:
                    errors.append(f"HTTP {r.status}")
        except aiohttp.ClientError as exc:
            errors.append(type(exc).__name__)
        lat.append(time.perf_counter() - t0)
        await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)) * random.uniform(0.95, 1.05))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")


async def main(n: int, duration: float) -> None:
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="eldric-ctl-bench-")
    log = open(os.path.join(tmp, "controller.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "eldric", "--role", "controller", "--port",
                             str(port), "--bind", "127.0.0.1", "--data-dir", tmp,
                             "--log-format", "json", "--worker-timeout", "90000"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n)) as s:
            for _ in range(100):
                try:
                    async with s.get(base + "/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            ps = psutil.Process(proc.pid)
            lat: list[float] = []
            errors: list[str] = []
            stop_at = time.monotonic() + duration
            cpu0 = ps.cpu_times()
            t0 = time.monotonic()
            rss_max = 0
            tasks = [asyncio.create_task(worker(s, base, i, stop_at, lat, errors))
                     for i in range(n)]
            while not all(t.done() for t in tasks):
                rss_max = max(rss_max, ps.memory_info().rss)
                await asyncio.sleep(1)
            await asyncio.gather(*tasks)
            cpu1 = ps.cpu_times()
            wall = time.monotonic() - t0
            async with s.get(base + "/api/v1/workers") as r:
                listed = len((await r.json())["workers"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall * 100
    print(f"controller scale check: {n} workers heartbeating every ~1 s for {duration:g} s")
    print(f"heartbeats: {len(lat)} ({len(lat) / wall:.0f}/s), errors: {len(errors)}"
          f"{' ' + repr(sorted(set(errors))) if errors else ''}, workers listed: {listed}")
    print(f"heartbeat latency ms: p50 {pct(lat, 50):.2f}  p99 {pct(lat, 99):.2f}  "
          f"max {max(lat) * 1000:.2f}")
    print(f"controller CPU: {cpu:.1f}% of one core on average; RSS max {rss_max / 2**20:.1f} MiB")
    print("(the load generator runs on the same 2 cores)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=500)
    ap.add_argument("--duration", type=float, default=60.0)
    a = ap.parse_args()
    try:
        import uvloop
        uvloop.run(main(a.workers, min(a.duration, 600)))
    except ImportError:
        asyncio.run(main(a.workers, min(a.duration, 600)))
