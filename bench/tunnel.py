"""What the NAT tunnel adds over a direct worker, on loopback.

    python bench/tunnel.py [--streams 200] [--tokens 32] [--delay-ms 5] [--seconds 5]

Starts an edge (plain HTTP), a worker behind it (--tunnel) and a second, direct worker,
all with the mock backend (the same tokens, the same delay between them), and prints:
- TTFT p50/p95: request to first SSE event, one stream at a time, direct vs through the
  edge's forward endpoint (what a router calls), and the difference (the tunnel's cost);
- per-chunk latency: the mean gap between SSE events, direct vs tunnelled, the
  difference per chunk;
- requests/s through one tunnel at c=32 (short whole replies), beside the direct worker.
Each process is started in its own process group and stopped by its id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from procs import Proc, free_port, log, wait_healthy  # noqa: E402

ROOT = Path(__file__).parent.parent
WORKER_KEY, ROUTER_KEY, ADMIN = "sk-bench-worker", "sk-bench-router", "sk-bench-admin"


def eldric(tmp: Path, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
    """This checkout's eldric (not whatever `eldric` is on PATH)."""
    os.environ.update(env or {})
    return Proc(name, [sys.executable, "-m", "eldric", *args, "--data-dir",
                       str(tmp / f"{name}-data"), "--log-level", "warning"], tmp / f"{name}.log")


async def _tunnel_id(s: aiohttp.ClientSession, edge: str) -> str:
    for _ in range(150):
        async with s.get(edge + "/api/v1/tunnel/workers",
                         headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            tunnels = (await r.json())["tunnels"]
        if tunnels:
            return tunnels[0]["tunnel"]
        await asyncio.sleep(0.1)
    raise RuntimeError("the tunnelled worker did not connect")


async def _stream(s: aiohttp.ClientSession, url: str, headers: dict) -> tuple[float, list[float]]:
    """(time to first event, gaps between events), seconds."""
    body = {"model": "eldric-mock", "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    started = time.perf_counter()
    arrivals: list[float] = []
    async with s.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        buf = b""
        async for chunk in r.content.iter_any():
            buf += chunk
            while b"\n\n" in buf:
                _, buf = buf.split(b"\n\n", 1)
                arrivals.append(time.perf_counter())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    return arrivals[0] - started, gaps


async def _rate(s: aiohttp.ClientSession, url: str, headers: dict, conc: int,
                seconds: float) -> float:
    body = {"model": "eldric-mock", "max_tokens": 4,
            "messages": [{"role": "user", "content": "hi"}]}
    done = 0
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with s.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
                await r.read()
                if r.status == 200:
                    done += 1
    started = time.perf_counter()
    await asyncio.gather(*[one() for _ in range(conc)])
    return done / (time.perf_counter() - started)


def _ms(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


async def measure(args: argparse.Namespace, edge: str, direct: str) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        tid = await _tunnel_id(s, edge)
        tunnel = f"{edge}/api/v1/tunnel/{tid}/forward"
        auth = {"Authorization": f"Bearer {ROUTER_KEY}"}
        for url, h in ((direct, {}), (tunnel, auth)):  # warm-up
            for _ in range(10):
                await _stream(s, url, h)
        results = {}
        for name, url, h in (("direct", direct, {}), ("tunnel", tunnel, auth)):
            ttft, gaps = [], []
            for _ in range(args.streams):
                t, g = await _stream(s, url, h)
                ttft.append(t)
                gaps.extend(g)
            results[name] = (ttft, gaps)
        rates = {name: await _rate(s, url, h, 32, args.seconds)
                 for name, url, h in (("direct", direct, {}), ("tunnel", tunnel, auth))}
    (dt, dg), (tt, tg) = results["direct"], results["tunnel"]
    print(f"streams: {args.streams} one at a time, {args.tokens} tokens, "
          f"{args.delay_ms:g} ms apart (mock backend, loopback)")
    print(f"{'':24}{'direct':>10}{'tunnel':>10}{'added':>10}")
    for label, d, t in (("TTFT p50 (ms)", _ms(dt, 0.5), _ms(tt, 0.5)),
                        ("TTFT p95 (ms)", _ms(dt, 0.95), _ms(tt, 0.95)),
                        ("per-chunk mean (ms)", statistics.mean(dg) * 1000,
                         statistics.mean(tg) * 1000),
                        ("per-chunk p95 (ms)", _ms(dg, 0.95), _ms(tg, 0.95))):
        print(f"{label:<24}{d:>10.2f}{t:>10.2f}{t - d:>+10.2f}")
    print(f"{'requests/s at c=32':<24}{rates['direct']:>10.0f}{rates['tunnel']:>10.0f}"
          f"{rates['tunnel'] / rates['direct'] * 100:>9.0f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--delay-ms", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    os.chdir(ROOT)
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="eldric-bench-tunnel-") as t:
        tmp = Path(t)
        e_port, w_port, d_port = free_port(), free_port(), free_port()
        edge = f"http://127.0.0.1:{e_port}"
        mock = ["--backend", "mock", "--mock-tokens", str(args.tokens),
                "--mock-token-delay", str(args.delay_ms), "--bind", "127.0.0.1"]
        try:
            procs.append(eldric(tmp, "edge", "--role", "edge", "--no-tls", "--http-port",
                                str(e_port), "--bind", "127.0.0.1", "--admin-key", ADMIN,
                                "--global-rpm", "0", "--per-ip-rpm", "0", "--per-key-rpm", "0",
                                "--tunnel-max-queued", "1024",
                                env={"ELDRIC_EDGE_AUTH_API_KEYS": json.dumps(
                                    {WORKER_KEY: "bench-worker", ROUTER_KEY: "bench-router"}),
                                    "ELDRIC_EDGE_AUTH_CLIENTS": json.dumps(
                                        {"bench-worker": {"scopes": ["register"]},
                                         "bench-router": {"scopes": ["cluster"]}})}))
            wait_healthy(procs[-1], edge + "/health")
            procs.append(eldric(tmp, "tunnelled", "--role", "worker", *mock, "--port",
                                str(w_port), "--tunnel", edge, "--api-key", WORKER_KEY,
                                "--tunnel-concurrency", "64"))
            procs.append(eldric(tmp, "direct", "--role", "worker", *mock, "--port",
                                str(d_port)))
            wait_healthy(procs[-1], f"http://127.0.0.1:{d_port}/health")
            log("edge, tunnelled worker and direct worker up; measuring")
            asyncio.run(measure(args, edge, f"http://127.0.0.1:{d_port}"))
        finally:
            for p in reversed(procs):
                p.stop()


if __name__ == "__main__":
    main()
