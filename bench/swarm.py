"""What a swarm adds to the time of an answer (a benchmark, not a test).

    python bench/swarm.py [--requests 30] [--tokens 16] [--delays 2,4,8] [--keep-tmp]

Starts three backends, one model each (m-1, m-2, m-3: tests/fakes/scripted.py, each in
its own process, answering --tokens words at one word per delay ms, streamed or whole),
and a real eldric router in front of them (its own process); then, one request at a
time so that the figures are latencies, not queueing:

- `slowest member alone`: m-3 asked through the router, whole: what a client waits
  without a swarm for the slowest member's answer;
- `synthesize, whole`: swarm/synthesize over m-1..m-3, m-1 (the fastest) merging. Per
  request, from the reply's `eldric` record: added latency = the swarm's time minus its
  slowest member's; the synthesis call's own time (generation: it is part of the added
  latency, not overhead) and the rest, eldric's overhead;
- `synthesize, streamed`: the same streamed: time to the first byte (the progress
  comment), to the first token of the final answer (TTFB of the answer), to the end;
  and the first token minus the slowest member (what streaming the merge saves a reader
  over waiting for it whole).

Prints p50 and p90 of each in ms. Bounded: 3 + 1 processes on 127.0.0.1, all stopped at
the end (also on error or Ctrl-C); --requests requests per row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's eldric and tests.fakes
sys.path.insert(0, str(Path(__file__).parent))
import procs  # noqa: E402  bench/procs.py

MODELS = ["m-1", "m-2", "m-3"]
Q = [{"role": "user", "content": "What is the capital of France?"}]


def serve_backend(port: int, model: str, tokens: int, delay_ms: float) -> None:
    """One scripted backend (run as `bench/swarm.py --backend ...` in its own process)."""
    from aiohttp import web

    from tests.fakes import scripted

    app = scripted.make_app([model], name=model)
    words = " ".join(f"w{i}" for i in range(tokens))
    app[scripted.SCRIPT].on(text=words, delay=delay_ms / 1000)
    app[scripted.SCRIPT].calls = _Forgetful()  # a long run must not keep every call
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                handler_cancellation=True)


class _Forgetful(list):  # type: ignore[type-arg]
    """The scripted server's call record, kept short (the call index is not needed)."""

    def append(self, item):  # type: ignore[no-untyped-def]
        if len(self) > 100:
            del self[:50]
        super().append(item)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def row(name: str, values: list[float]) -> str:
    return (f"{name:<56} p50 {pct(values, 50):8.1f}   p90 {pct(values, 90):8.1f}   "
            f"(n={len(values)})")


async def whole(s: aiohttp.ClientSession, base: str, body: dict) -> tuple[float, dict]:
    t0 = time.perf_counter()
    async with s.post(base + "/v1/chat/completions", json=body) as r:
        reply = await r.json()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {reply}")
    return (time.perf_counter() - t0) * 1000, reply


async def streamed(s: aiohttp.ClientSession, base: str, body: dict
                   ) -> tuple[float, float, float, dict]:
    """(first byte, first token of the answer, end) in ms, and the eldric record."""
    t0 = time.perf_counter()
    first_byte = first_token = None
    record: dict = {}
    buf = b""
    async with s.post(base + "/v1/chat/completions", json={**body, "stream": True}) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {await r.text()}")
        async for chunk in r.content.iter_any():
            first_byte = first_byte or (time.perf_counter() - t0) * 1000
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                if not event.startswith(b"data: {"):
                    continue
                data = json.loads(event[6:])
                if "error" in data:
                    raise RuntimeError(f"the swarm failed: {data['error']}")
                choices = data.get("choices") or []
                if first_token is None and choices and choices[0]["delta"].get("content"):
                    first_token = (time.perf_counter() - t0) * 1000
                record = data.get("eldric") or record
    end = (time.perf_counter() - t0) * 1000
    assert first_byte is not None and first_token is not None, "no answer streamed"
    return first_byte, first_token, end, record


def slowest(record: dict) -> float:
    return max(c["latency_ms"] for c in record["members"] if c["stage"] == "answer")


def synthesis(record: dict) -> float:
    return next(c["latency_ms"] for c in record["members"] if c["stage"] == "synthesis")


async def measure(base: str, n: int) -> None:
    swarm = {"model": "swarm/synthesize", "messages": Q,
             "swarm": {"members": MODELS, "judge": "m-1"}}
    async with aiohttp.ClientSession() as s:
        for _ in range(3):  # warm-up: connections, first-call costs
            await whole(s, base, swarm)
            await streamed(s, base, swarm)
        alone = [(await whole(s, base, {"model": "m-3", "messages": Q}))[0] for _ in range(n)]
        added, synth, overhead, wall_added = [], [], [], []
        for _ in range(n):
            wall, reply = await whole(s, base, swarm)
            rec = reply["eldric"]
            added.append(rec["latency_ms"] - slowest(rec))
            synth.append(synthesis(rec))
            overhead.append(rec["latency_ms"] - slowest(rec) - synthesis(rec))
            wall_added.append(wall - slowest(rec))
        fb, ft, end, saved = [], [], [], []
        for _ in range(n):
            first_byte, first_token, done, rec = await streamed(s, base, swarm)
            fb.append(first_byte)
            ft.append(first_token)
            end.append(done)
            saved.append(first_token - slowest(rec))
    print()
    print("all figures in ms, one request at a time")
    print(row("slowest member alone (m-3 through the router)", alone))
    print(row("synthesize whole: added latency over its slowest", added))
    print(row("  of which the synthesis call (generation)", synth))
    print(row("  of which eldric's overhead", overhead))
    print(row("  added, as the client sees it (wall - slowest)", wall_added))
    print(row("synthesize streamed: first byte (progress)", fb))
    print(row("synthesize streamed: first token of the answer (TTFB)", ft))
    print(row("synthesize streamed: first token minus slowest member", saved))
    print(row("synthesize streamed: end", end))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--delays", default="2,4,8", help="ms per token of m-1,m-2,m-3")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--backend", nargs=4, metavar=("PORT", "MODEL", "TOKENS", "DELAY_MS"),
                    help=argparse.SUPPRESS)  # internal: one backend process
    args = ap.parse_args()
    if args.backend:
        port, model, tokens, delay = args.backend
        serve_backend(int(port), model, int(tokens), float(delay))
        return
    delays = [float(d) for d in args.delays.split(",")]
    if len(delays) != len(MODELS):
        ap.error(f"--delays: {len(MODELS)} values, one per member")
    tmp = Path(tempfile.mkdtemp(prefix="eldric-bench-swarm-"))
    started: list[procs.Proc] = []
    try:
        urls = []
        for model, delay in zip(MODELS, delays):
            port = procs.free_port()
            p = procs.Proc(model, [sys.executable, __file__, "--backend", str(port), model,
                                   str(args.tokens), str(delay)], tmp / f"{model}.log")
            started.append(p)
            urls.append(f"http://127.0.0.1:{port}")
            procs.wait_healthy(p, urls[-1] + "/v1/models")
        port = procs.free_port()
        router = procs.Proc("router", [
            sys.executable, "-m", "eldric", "--role", "router", "--workers", ",".join(urls),
            "--port", str(port), "--bind", "127.0.0.1", "--data-dir", str(tmp / "data"),
            "--strategy", "round_robin", "--log-level", "warning"], tmp / "router.log")
        started.append(router)
        base = f"http://127.0.0.1:{port}"
        procs.wait_healthy(router, base + "/health")
        procs.log(f"backends {', '.join(f'{m}: {d:g} ms/token' for m, d in zip(MODELS, delays))}"
                  f", {args.tokens} tokens; router {base}")
        asyncio.run(measure(base, args.requests))
    finally:
        for p in reversed(started):
            p.stop()
        if args.keep_tmp:
            procs.log(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
