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
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from bench.procs import edge_chain_running  # noqa: E402

BODY = {"model": "eldric-mock", "temperature": 0,
        "messages": [{"role": "user", "content": "Say something."}]}


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
            with edge_chain_running(Path(d), cache, ["--cache", cache], BODY) as (url, edge):
                asyncio.run(_send(url, 50, False, None))  # warm-up
                cases = [("backend call, cache off", False, None)] if cache == "off" else [
                    ("miss, cache on", False, "miss"), ("hit", True, "hit")]
                for name, same, expect in cases:
                    if same:
                        asyncio.run(_send(url, 1, True, None))  # stored
                    cpu0 = edge.cpu_seconds()
                    lat = asyncio.run(_send(url, n, same, expect))
                    rows.append((name, lat, (edge.cpu_seconds() - cpu0) / n * 1e6))
    return rows


def in_process(n: int) -> dict[str, float]:
    """The cache's own CPU per request in this process (no HTTP): the lookup and the put
    of a miss, and a whole hit, around a `send` that returns a stored-size reply at once."""
    from prometheus_client import CollectorRegistry

    from eldric import keys
    from eldric.exchange import Reply
    from eldric.replycache.config import CacheConfig
    from eldric.replycache.hop import ReplyCache, answer
    from eldric.replycache.store import MemoryStore
    from eldric.serve.request import FAST

    reply = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                        "model": "eldric-mock", "choices": [{"index": 0, "message": {
                            "role": "assistant", "content": " w" * 16},
                            "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 16,
                                  "total_tokens": 19}}).encode()

    class Hop:
        request_id = "r"
        lane = FAST

    class Req:
        path = "/v1/chat/completions"
        headers: dict[str, str] = {}

        def __getitem__(self, k):  # type: ignore[no-untyped-def]
            assert k is keys.HOP
            return Hop

    async def send(tap, headers):  # type: ignore[no-untyped-def]
        return Reply(200, [], reply)

    async def go() -> dict[str, float]:
        cache = ReplyCache(CacheConfig(mode="exact"), MemoryStore(n + 1, 1 << 30),
                           CollectorRegistry())
        bodies = [json.dumps({**BODY, "seed": i}).encode() for i in range(n)]
        out = {}
        for name, bs in (("miss", bodies), ("hit", bodies)):
            t0 = time.process_time()
            for b in bs:
                await answer(cache, Req(), b, "scope", {}, None, send)
            await asyncio.sleep(0)  # the puts
            out[name] = (time.process_time() - t0) / n * 1e6
        t0 = time.process_time()
        for b in bodies:
            await send(None, {})
        out["send alone"] = (time.process_time() - t0) / n * 1e6
        return out

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    own = in_process(2_000 if a.quick else 20_000)
    print("the cache's own CPU per request, in process (µs): miss (lookup + put) "
          f"{own['miss'] - own['send alone']:.1f}, hit (lookup + reply) "
          f"{own['hit'] - own['send alone']:.1f}")
    rows = run(200 if a.quick else 1000)
    print("mock worker <- router <- edge, one whole request at a time (µs):")
    print(f"   {'':26}{'p50':>9}{'p99':>9}{'edge CPU':>10}")
    for name, lat, cpu in rows:
        print(f"   {name:26}{_pct(lat, 0.5):9.0f}{_pct(lat, 0.99):9.0f}{cpu:10.0f}")


if __name__ == "__main__":
    main()
