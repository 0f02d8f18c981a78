"""Streaming through the full chain: edge -> router -> worker -> mock, each its own process
(API key required, rate limits on but far too high to trip, as in bench/run.py).

    python bench/streams.py [--duration 5] [--streams 1000] [--slow-delay 200]

(a) streaming throughput and latency: mock --tokens 20 --token-delay 0, closed loop with
    bench/loadgen.py (raw client) at c=1 and c=64, mock direct vs full chain: req/s,
    p50/p99 total latency and TTFT.
(b) many open streams: the chain restarted with a slow mock (--tokens 20 --token-delay 200,
    ~4 s per stream); --streams concurrent streams (default 1000), one connection each
    (aiohttp, TCPConnector(limit=0)), opened over --ramp seconds. Every stream must end
    with `data: [DONE]`; completions, [DONE]s, chunks and failures are counted, and each
    process's RSS is sampled every 0.5 s (peak reported).

The open-files limit is raised in this process (and so inherited by the children).
Prints the figures, writes bench/results/streams.json, stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402

from chain import AUTH, pct, raise_nofile, rss_mb, start_chain  # noqa: E402
from measure import BODY, RESULTS, run_loadgen  # noqa: E402
from procs import Proc, log, log_summary  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="(a): seconds per measurement")
    p.add_argument("--warmup", type=float, default=1.0, help="(a): warm-up seconds")
    p.add_argument("--max-requests", type=int, default=200_000, help="(a): cap per run")
    p.add_argument("--tokens", type=int, default=20)
    p.add_argument("--streams", type=int, default=1000, help="(b): concurrent streams")
    p.add_argument("--slow-delay", type=float, default=200.0, help="(b): mock ms per token")
    p.add_argument("--ramp", type=float, default=1.0,
                   help="(b): open the streams evenly over this many seconds")
    p.add_argument("--stream-timeout", type=float, default=120.0,
                   help="(b): total timeout per stream")
    p.add_argument("--skip-a", action="store_true")
    p.add_argument("--skip-b", action="store_true")
    p.add_argument("--output", type=Path, default=RESULTS / "streams.json")
    p.add_argument("--keep-tmp", action="store_true")
    a = p.parse_args()
    if not (0 < a.duration <= 60 and 0 < a.streams <= 5000 and 0 <= a.ramp <= 30):
        p.error("--duration in (0, 60], --streams in (0, 5000], --ramp in [0, 30]")
    return a


# --------------------------------------------------------------------------- part (a)


def part_a(a: argparse.Namespace, tmp: Path, notes: list[str]) -> dict:
    procs: list[Proc] = []
    res: dict = {}
    try:
        ch = start_chain(tmp / "a", procs, a.tokens, 0, notes)
        for target, url in ch["urls"].items():
            headers = AUTH if target == "chain" else None
            for c in (1, 64):
                log(f"(a) {target}: stream c={c}")
                r = run_loadgen(url, concurrency=c, duration=a.duration, warmup=a.warmup,
                                max_requests=a.max_requests, stream=True, client="raw",
                                headers=headers)
                res[f"{target} c={c}"] = r
                if r.get("failures"):
                    notes.append(f"(a) {target} c={c}: {r['failures']} failures "
                                 f"non200={r['non200']} errors={r['errors']}")
        for n, p in ch["servers"].items():
            if not p.alive():
                notes.append(f"(a) {n} DIED: {p.stderr_tail(8)}")
        res["logs"] = {n: log_summary(p, ch["log_format"], notes)
                       for n, p in ch["servers"].items() if n != "mock"}
    finally:
        for p in reversed(procs):
            p.stop()
    return res


# --------------------------------------------------------------------------- part (b)


class StreamStats:
    def __init__(self) -> None:
        self.completed = 0        # 200, ended with [DONE]
        self.done_seen = 0        # [DONE] terminators seen
        self.failures: collections.Counter = collections.Counter()
        self.chunks: collections.Counter = collections.Counter()  # data chunks per stream
        self.ttft: list[float] = []
        self.total: list[float] = []
        self.open_now = 0         # streams with a first chunk and not yet finished
        self.open_max = 0
        self.inflight = 0         # requests sent and not yet finished
        self.inflight_max = 0


async def one_stream(session: aiohttp.ClientSession, url: str, st: StreamStats) -> None:
    t0 = time.perf_counter()
    st.inflight += 1
    st.inflight_max = max(st.inflight_max, st.inflight)
    opened = False
    chunks = 0
    done = False
    try:
        async with session.post(url, json=dict(BODY, stream=True), headers=AUTH) as r:
            if r.status != 200:
                body = await r.read()
                st.failures[f"HTTP {r.status} {body[:80]!r}"] += 1
                return
            async for line in r.content:
                if not line.startswith(b"data:"):
                    continue
                if not opened:
                    opened = True
                    st.ttft.append(time.perf_counter() - t0)
                    st.open_now += 1
                    st.open_max = max(st.open_max, st.open_now)
                if line.strip() == b"data: [DONE]":
                    done = True
                else:
                    chunks += 1
        st.chunks[chunks] += 1
        if done:
            st.done_seen += 1
            st.completed += 1
            st.total.append(time.perf_counter() - t0)
        else:
            st.failures[f"no [DONE] after {chunks} chunks"] += 1
    except Exception as exc:  # noqa: BLE001 - counted
        st.failures[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
    finally:
        st.inflight -= 1
        if opened:
            st.open_now -= 1


async def many_streams(a: argparse.Namespace, url: str, st: StreamStats) -> float:
    conn = aiohttp.TCPConnector(limit=0, force_close=True)  # one connection per stream
    timeout = aiohttp.ClientTimeout(total=a.stream_timeout)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        t0 = time.perf_counter()
        tasks = []
        for i in range(a.streams):  # bounded by --streams
            target = t0 + (a.ramp * i / a.streams)
            now = time.perf_counter()
            if target > now:
                await asyncio.sleep(target - now)
            tasks.append(asyncio.create_task(one_stream(session, url, st)))
        done, pending = await asyncio.wait(tasks, timeout=a.stream_timeout + a.ramp + 10)
        for t in pending:
            t.cancel()
        if pending:
            st.failures["not finished (cancelled)"] += len(pending)
            await asyncio.wait(pending, timeout=5)
        return time.perf_counter() - t0


def sampler(servers: dict[str, Proc], stop: threading.Event, peaks: dict, conns: dict
            ) -> None:
    for _ in range(100_000):  # bounded; stopped by the event
        if stop.is_set():
            return
        for n, p in servers.items():
            v = rss_mb(p)
            if v is not None:
                peaks[n] = max(peaks.get(n, 0.0), v)
            try:
                c = len(p.ps.net_connections(kind="tcp"))
            except Exception:  # noqa: BLE001
                try:
                    c = len(p.ps.connections(kind="tcp"))
                except Exception:  # noqa: BLE001
                    c = -1
            conns[n] = max(conns.get(n, 0), c)
        stop.wait(0.5)


def part_b(a: argparse.Namespace, tmp: Path, notes: list[str]) -> dict:
    procs: list[Proc] = []
    stop = threading.Event()
    try:
        ch = start_chain(tmp / "b", procs, a.tokens, a.slow_delay, notes)
        servers = ch["servers"]
        time.sleep(0.5)
        base = {n: round(rss_mb(p) or 0, 1) for n, p in servers.items()}
        peaks: dict = {}
        conns: dict = {}
        th = threading.Thread(target=sampler, args=(servers, stop, peaks, conns), daemon=True)
        th.start()
        st = StreamStats()
        log(f"(b) {a.streams} streams over {a.ramp:g}s, mock {a.tokens} tokens x "
            f"{a.slow_delay:g} ms")
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        elapsed = asyncio.run(many_streams(a, ch["urls"]["chain"], st))
        time.sleep(1.0)  # one more sample after the streams ended
        stop.set()
        th.join(timeout=5)
        after = {n: round(rss_mb(p) or 0, 1) for n, p in servers.items()}
        for n, p in servers.items():
            if not p.alive():
                notes.append(f"(b) {n} DIED (code {p.popen.returncode}): {p.stderr_tail(8)}")
        logs = {n: log_summary(p, ch["log_format"], notes)
                for n, p in servers.items() if n != "mock"}
        return {"streams": a.streams, "ramp_s": a.ramp, "elapsed_s": round(elapsed, 2),
                "completed": st.completed, "done_terminators": st.done_seen,
                "failed": sum(st.failures.values()), "failures": dict(st.failures),
                "chunks_per_stream": {str(k): v for k, v in sorted(st.chunks.items())},
                "max_open_streams": st.open_max, "max_inflight": st.inflight_max,
                "ttft_p50_ms": _ms(pct(st.ttft, 50)), "ttft_p99_ms": _ms(pct(st.ttft, 99)),
                "ttft_max_ms": _ms(max(st.ttft) if st.ttft else None),
                "total_p50_s": _s(pct(st.total, 50)), "total_p99_s": _s(pct(st.total, 99)),
                "total_max_s": _s(max(st.total) if st.total else None),
                "rss_before_mb": base, "rss_peak_mb": {k: round(v, 1) for k, v in peaks.items()},
                "rss_after_mb": after, "tcp_conns_peak": conns, "logs": logs}
    finally:
        stop.set()
        for p in reversed(procs):
            p.stop()


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def _s(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def main() -> int:
    a = parse_args()
    nofile = raise_nofile()
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="eldric-streams-"))
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    notes: list[str] = []
    out: dict = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nofile": nofile,
                 "args": {k: (str(v) if isinstance(v, Path) else v)
                          for k, v in vars(a).items()}, "notes": notes}
    ok = True
    try:
        log(f"open-files limit {nofile}")
        if not a.skip_a:
            out["a"] = part_a(a, tmp, notes)
            print(f"\n(a) streaming, mock {a.tokens} chunks, 0 ms/token; raw loadgen, "
                  f"{a.duration:g} s after {a.warmup:g} s warm-up")
            print(f"{'target':22} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'TTFT p50':>9} "
                  f"{'TTFT p99':>9} {'fail':>5}")
            for k, r in out["a"].items():
                if k == "logs":
                    continue
                name = k.replace("chain", "edge->router->worker").replace("direct",
                                                                          "mock direct")
                print(f"{name:22} {r['rps']:8.1f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} "
                      f"{r['ttft_p50_ms']:9.3f} {r['ttft_p99_ms']:9.3f} {r['failures']:5}")
                ok &= not r["failures"]
        if not a.skip_b:
            b = out["b"] = part_b(a, tmp, notes)
            print(f"\n(b) {b['streams']} concurrent streams through edge->router->worker, "
                  f"mock {a.tokens} chunks x {a.slow_delay:g} ms, opened over {a.ramp:g} s")
            print(f"completed {b['completed']}/{b['streams']}, [DONE] {b['done_terminators']}, "
                  f"failed {b['failed']} {b['failures'] or ''}")
            print(f"chunks per stream: {b['chunks_per_stream']}; max open at once "
                  f"{b['max_open_streams']}, max in flight {b['max_inflight']}; "
                  f"wall {b['elapsed_s']} s")
            print(f"TTFT p50/p99/max {b['ttft_p50_ms']}/{b['ttft_p99_ms']}/{b['ttft_max_ms']} ms;"
                  f" stream duration p50/p99/max {b['total_p50_s']}/{b['total_p99_s']}/"
                  f"{b['total_max_s']} s")
            print(f"{'process':8} {'RSS before':>11} {'peak':>8} {'after':>8} {'peak tcp':>9}")
            for n in b["rss_before_mb"]:
                print(f"{n:8} {b['rss_before_mb'][n]:11.1f} {b['rss_peak_mb'].get(n, 0):8.1f} "
                      f"{b['rss_after_mb'][n]:8.1f} {b['tcp_conns_peak'].get(n, -1):9}")
            ok &= b["completed"] == b["streams"] and not b["failed"]
        for n in notes:
            print("note: " + n)
        a.output.write_text(json.dumps(out, indent=1))
        return 0 if ok else 1
    finally:
        if not a.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")


if __name__ == "__main__":
    sys.exit(main())
