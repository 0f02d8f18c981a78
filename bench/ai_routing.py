"""AI routing: how long the real SmolLM2 takes to decide, and what a fall-back costs
(a benchmark, not a test).

`python bench/ai_routing.py [--decisions 20] [--requests 200]`

Starts, each its own process on 127.0.0.1: an embedded worker (llama.cpp with the
SmolLM2-135M GGUF of the quick start: the deciding model), two mock workers (what gets
routed: model eldric-mock) and a router over all three, its strategy round_robin. The
router asks itself for decisions (its --ai-url is its own URL; the decider's request is
marked and routed to the embedded worker without AI). Then prints:

- SmolLM2's decision latency, p50/p99 as GET /api/v1/ai/status reports it, over
  --decisions requests with the cache off and a deadline it never reaches (30 s), and how
  many answers were valid; then the same at the default 300 ms deadline (how many make it);
- a fall-back's cost: the client's latency p50/p99 of --requests requests, one at a time,
  with AI routing off, then autonomous with the decider down (connection refused), with
  a decider that answers at once but not JSON (a mock worker: invalid), and with a
  deadline of 50 ms that SmolLM2 cannot meet (timeout): the time each adds to a request.

Bounded; stops every process it started (their process groups).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry import start, stop, wait_ready  # noqa: E402  (bench/registry.py's)

DECIDER = "SmolLM2-135M-Instruct"
ROUTED = "eldric-mock"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(q * len(values) + 0.999999) - 1))]


async def configure(s: aiohttp.ClientSession, router: str, **body) -> dict:
    async with s.post(router + "/api/v1/ai/configure", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def status(s: aiohttp.ClientSession, router: str) -> dict:
    async with s.get(router + "/api/v1/ai/status") as r:
        return await r.json()


async def timed(s: aiohttp.ClientSession, router: str, n: int) -> tuple[list[float], dict]:
    """n requests one at a time: client latency (ms) of each, and the last reply's headers."""
    out, headers = [], {}
    for i in range(n):
        t0 = time.perf_counter()
        async with s.post(router + "/v1/chat/completions", json={
                "model": ROUTED, "messages": [{"role": "user", "content": f"hello {i}"}]}) as r:
            await r.read()
            assert r.status == 200, r.status
            headers = dict(r.headers)
        out.append((time.perf_counter() - t0) * 1000)
    return out, headers


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="eldric-bench-ai-"))
    ports = {name: free_port() for name in ("embedded", "a", "b", "router")}
    url = {name: f"http://127.0.0.1:{p}" for name, p in ports.items()}
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start(["--role", "worker", "--backend", "embedded", "--bind", "127.0.0.1",
                            "--port", str(ports["embedded"]), "--data-dir", str(tmp / "e")],
                           tmp / "embedded.log"))
        for name in ("a", "b"):
            procs.append(start(["--role", "worker", "--backend", "mock", "--bind", "127.0.0.1",
                                "--port", str(ports[name]), "--data-dir", str(tmp / name)],
                               tmp / f"{name}.log"))
        async with aiohttp.ClientSession() as s:
            for name, proc in zip(("embedded", "a", "b"), procs):
                await wait_ready(url[name], proc, 120)
            router = url["router"]
            procs.append(start(["--role", "router", "--bind", "127.0.0.1",
                                "--port", str(ports["router"]), "--data-dir", str(tmp / "r"),
                                "--workers", f"{url['embedded']},{url['a']},{url['b']}",
                                "--strategy", "round_robin"], tmp / "router.log"))
            await wait_ready(router, procs[-1], 60)
            await timed(s, router, 20)  # warm: connections, first-call costs

            print(f"SmolLM2-135M as the deciding model (cache off; load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
            for deadline in (30_000, 300):
                await configure(s, router, mode="autonomous", llm_model=DECIDER,
                                llm_url=router, timeout_ms=deadline, cache_size=0)
                before = await status(s, router)
                lat, _ = await timed(s, router, args.decisions)
                st = await status(s, router)
                valid = st["decisions"] - before["decisions"]
                timeouts = st["timeouts"] - before["timeouts"]
                invalid = st["invalid_answers"] - before["invalid_answers"]
                print(f"  deadline {deadline:>6} ms: {args.decisions} decisions, {valid} valid, "
                      f"{invalid} invalid, {timeouts} timed out; status latency (all asked so "
                      f"far) p50 {st['latency_ms']['p50']} ms p99 {st['latency_ms']['p99']} ms; "
                      f"client p50 {pct(lat, .5):.1f} ms p99 {pct(lat, .99):.1f} ms")
                if invalid:
                    print(f"  (last: {st['last']})")
                if deadline == 30_000:
                    d = st["latency_ms"]
                    print(f"  -> SmolLM2 decision latency: p50 {d['p50']} ms, p99 {d['p99']} ms "
                          f"(n={d['count']})")

            print(f"\nA fall-back's cost ({args.requests} requests one at a time, client "
                  "latency):")
            dead = f"http://127.0.0.1:{free_port()}"
            cases = [("AI routing off", dict(mode="none")),
                     ("decider down (refused)", dict(mode="autonomous", llm_model=DECIDER,
                                                     llm_url=dead, timeout_ms=300)),
                     ("decider invalid (prose)", dict(mode="autonomous", llm_model=ROUTED,
                                                      llm_url=url["a"], timeout_ms=300)),
                     ("decider timeout (50 ms)", dict(mode="autonomous", llm_model=DECIDER,
                                                      llm_url=router, timeout_ms=50))]
            base = None
            for label, body in cases:
                await configure(s, router, cache_size=0, **body)
                n = args.requests if body["mode"] == "none" or "timeout" not in label \
                    else min(args.requests, 40)
                lat, headers = await timed(s, router, n)
                p50, p99 = pct(lat, .5), pct(lat, .99)
                base = p50 if base is None else base
                print(f"  {label:<26} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
                      f"(+{p50 - base:.2f} ms at p50)  reason: "
                      f"{headers.get('X-Eldric-Route-Reason', '')[:90]}")
    finally:
        for p in reversed(procs):
            stop(p)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decisions", type=int, default=20)
    ap.add_argument("--requests", type=int, default=200)
    asyncio.run(main(ap.parse_args()))
