"""What the response cache buys and costs at the edge (issue 22).

    python bench/cache.py            # ~1 min
    python bench/cache.py --quick

Real processes on 127.0.0.1: mock worker <- router <- edge. The edge is run with
--cache off and with --cache exact; the same whole chat request (temperature 0) is sent
one at a time. Printed: latency p50/p99 (µs) of
  - a backend call, cache off (the request through router and worker),
  - a miss with the cache on (every request different: the lookup, the put),
  - a hit (the same request again: answered by the edge alone),
and the edge's CPU per request (µs) for each. Every process is stopped by its group.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from bench.procs import Proc, free_port, wait_healthy, wait_serving  # noqa: E402

BODY = {"model": "eldric-mock", "temperature": 0,
        "messages": [{"role": "user", "content": "Say something."}]}


def _start(tmp: Path, cache: str, procs: list[Proc]) -> str:
    wport, rport, eport = free_port(), free_port(), free_port()
    exe, cwd = [sys.executable, "-m", "eldric"], Path(__file__).resolve().parents[1]
    assert Path.cwd() == cwd, "run it from the repository root: python bench/cache.py"
    common = ["--bind", "127.0.0.1", "--log-level", "warning"]
    w = Proc("worker", [*exe, "--role", "worker", "--backend", "mock", "--mock-tokens", "16",
                        "--port", str(wport), "--data-dir", str(tmp / f"w-{cache}"), *common],
             tmp / f"w-{cache}.log")
    procs.append(w)
    wait_healthy(w, f"http://127.0.0.1:{wport}/health")
    r = Proc("router", [*exe, "--role", "router", "--workers", f"http://127.0.0.1:{wport}",
                        "--port", str(rport), "--data-dir", str(tmp / f"r-{cache}"), *common],
             tmp / f"r-{cache}.log")
    procs.append(r)
    wait_healthy(r, f"http://127.0.0.1:{rport}/health")
    e = Proc("edge", [*exe, "--role", "edge", "--no-tls", "--http-port", str(eport),
                      "--routers", f"http://127.0.0.1:{rport}", "--no-require-api-key",
                      "--global-rpm", "0", "--per-ip-rpm", "0", "--per-key-rpm", "0",
                      "--cache", cache, "--data-dir", str(tmp / f"e-{cache}"), *common],
             tmp / f"e-{cache}.log")
    procs.append(e)
    url = f"http://127.0.0.1:{eport}"
    wait_healthy(e, url + "/health")
    wait_serving(e, url + "/v1/chat/completions", BODY)
    return url


async def _send(url: str, n: int, same: bool, expect: str | None) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            body = BODY if same else {**BODY, "seed": time.time_ns() + i}
            t0 = time.perf_counter()
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                await r.read()
                assert r.status == 200
                if expect is not None:
                    assert r.headers.get("X-Eldric-Cache") == expect, r.headers
            out.append(time.perf_counter() - t0)
    return out


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1e6


def run(n: int) -> list[tuple[str, list[float], float]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="eldric-bench-cache-") as d:
        for cache in ("off", "exact"):
            procs: list[Proc] = []
            try:
                url = _start(Path(d), cache, procs)
                edge = procs[-1]
                asyncio.run(_send(url, 50, False, None))  # warm-up
                cases = [("backend call, cache off", False, None)] if cache == "off" else [
                    ("miss, cache on", False, "miss"), ("hit", True, None)]
                for name, same, expect in cases:
                    if same:
                        asyncio.run(_send(url, 1, True, None))  # stored
                        expect = "hit"
                    cpu0 = edge.cpu_seconds()
                    lat = asyncio.run(_send(url, n, same, expect))
                    rows.append((name, lat, (edge.cpu_seconds() - cpu0) / n * 1e6))
            finally:
                for p in reversed(procs):
                    p.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    rows = run(200 if a.quick else 1000)
    print("mock worker <- router <- edge, one whole request at a time (µs):")
    print(f"   {'':26}{'p50':>9}{'p99':>9}{'edge CPU':>10}")
    for name, lat, cpu in rows:
        print(f"   {name:26}{_pct(lat, 0.5):9.0f}{_pct(lat, 0.99):9.0f}{cpu:10.0f}")


if __name__ == "__main__":
    main()
