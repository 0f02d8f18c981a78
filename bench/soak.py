"""Soak test: a steady open-loop load (default 200 req/s, half streaming, half not) through
the full chain edge -> router -> worker -> mock (each its own process; API key and rate
limits on) for --duration seconds (default 600), RSS of every process sampled every 10 s.

    python bench/soak.py [--duration 600] [--rate 200] [--stream-fraction 0.5]

Prints the RSS summary per process (first sample after the --rss-warmup, last, max,
growth %), error counts, and latency p50/p99 per minute; writes bench/results/soak.json.
Bounded by --duration and --max-requests; stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402

from chain import AUTH, pct, raise_nofile, rss_mb, start_chain  # noqa: E402
from measure import BODY, RESULTS  # noqa: E402
from procs import Proc, log, log_summary  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--rate", type=float, default=200.0, help="requests per second")
    p.add_argument("--stream-fraction", type=float, default=0.5)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--token-delay", type=float, default=0.0, help="mock ms between tokens")
    p.add_argument("--rss-interval", type=float, default=10.0)
    p.add_argument("--rss-warmup", type=float, default=30.0,
                   help="first RSS sample counted for growth is the first after this")
    p.add_argument("--max-requests", type=int, default=0,
                   help="cap (default: rate * duration * 1.05)")
    p.add_argument("--max-inflight", type=int, default=2000,
                   help="requests beyond this many in flight are skipped and counted")
    p.add_argument("--output", type=Path, default=RESULTS / "soak.json")
    p.add_argument("--keep-tmp", action="store_true")
    a = p.parse_args()
    if not (0 < a.duration <= 7200 and 0 < a.rate <= 5000):
        p.error("--duration in (0, 7200], --rate in (0, 5000]")
    if not a.max_requests:
        a.max_requests = int(a.rate * a.duration * 1.05) + 10
    return a


class Stats:
    def __init__(self) -> None:
        self.minutes: dict[int, dict] = collections.defaultdict(
            lambda: {"lat": [], "lat_stream": [], "ttft": [], "ok": 0, "fail": 0})
        self.errors: collections.Counter = collections.Counter()
        self.sent = self.ok = self.fail = self.skipped = 0
        self.inflight = 0
        self.max_inflight_seen = 0


async def one(session: aiohttp.ClientSession, url: str, stream: bool, st: Stats,
              t_run0: float) -> None:
    body = dict(BODY, stream=True) if stream else BODY
    t0 = time.perf_counter()
    ttft = None
    err = None
    try:
        async with session.post(url, json=body, headers=AUTH) as r:
            if r.status != 200:
                await r.read()
                err = f"HTTP {r.status}"
            elif stream:
                done = False
                chunks = 0
                async for line in r.content:
                    if line.startswith(b"data:"):
                        if ttft is None:
                            ttft = time.perf_counter() - t0
                        if line.strip() == b"data: [DONE]":
                            done = True
                        else:
                            chunks += 1
                if not done:
                    err = "stream without [DONE]"
            else:
                data = await r.read()
                if b'"choices"' not in data:
                    err = "200 without choices"
    except Exception as exc:  # noqa: BLE001 - counted
        err = type(exc).__name__
    lat = time.perf_counter() - t0
    m = st.minutes[int((time.perf_counter() - t_run0) // 60)]
    if err:
        st.fail += 1
        m["fail"] += 1
        st.errors[("stream " if stream else "plain ") + err] += 1
    else:
        st.ok += 1
        m["ok"] += 1
        m["lat"].append(lat * 1000)
        if stream:
            m["lat_stream"].append(lat * 1000)
            m["ttft"].append(ttft * 1000)
    st.inflight -= 1


async def drive(a: argparse.Namespace, url: str, st: Stats) -> float:
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    rng = random.Random(1)
    tasks: set[asyncio.Task] = set()
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        t0 = time.perf_counter()
        last_log = t0
        i = 0
        while i < a.max_requests:  # bounded by count and by time
            now = time.perf_counter()
            if now - t0 >= a.duration:
                break
            target = t0 + i / a.rate
            if target > now:
                await asyncio.sleep(target - now)
            i += 1
            if st.inflight >= a.max_inflight:
                st.skipped += 1
                continue
            st.sent += 1
            st.inflight += 1
            st.max_inflight_seen = max(st.max_inflight_seen, st.inflight)
            t = asyncio.create_task(one(session, url, rng.random() < a.stream_fraction,
                                        st, t0))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            if now - last_log >= 60:
                last_log = now
                log(f"t={now - t0:.0f}s sent={st.sent} ok={st.ok} fail={st.fail} "
                    f"inflight={st.inflight}")
        elapsed = time.perf_counter() - t0
        if tasks:
            await asyncio.wait(tasks, timeout=70)
    return elapsed


def sampler(servers: dict[str, Proc], interval: float, stop: threading.Event,
            t0: float, series: dict[str, list]) -> None:
    while not stop.is_set():
        t = time.perf_counter() - t0
        for n, p in servers.items():
            series[n].append((round(t, 1), rss_mb(p)))
        stop.wait(interval)


def main() -> int:
    a = parse_args()
    nofile = raise_nofile()
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="eldric-soak-"))
    procs: list[Proc] = []
    notes: list[str] = []
    st = Stats()
    series: dict[str, list] = collections.defaultdict(list)
    stop = threading.Event()
    try:
        ch = start_chain(tmp, procs, a.tokens, a.token_delay, notes)
        servers = ch["servers"]
        log(f"soak: {a.rate:g} req/s for {a.duration:g}s, stream fraction "
            f"{a.stream_fraction}, nofile {nofile}")
        t0 = time.perf_counter()
        th = threading.Thread(target=sampler, args=(servers, a.rss_interval, stop, t0, series),
                              daemon=True)
        th.start()
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        elapsed = asyncio.run(drive(a, ch["urls"]["chain"], st))
        stop.set()
        th.join(timeout=5)
        for n, p in servers.items():
            series[n].append((round(time.perf_counter() - t0, 1), rss_mb(p)))
            if not p.alive():
                notes.append(f"{n} DIED (code {p.popen.returncode}): {p.stderr_tail(8)}")
        logs = {n: log_summary(p, ch["log_format"], notes)
                for n, p in servers.items() if n != "mock"}

        rss = {}
        for n, s in series.items():
            vals = [(t, v) for t, v in s if v is not None]
            after = [v for t, v in vals if t >= a.rss_warmup] or [v for _, v in vals]
            first, last, mx = after[0], after[-1], max(v for _, v in vals)
            rss[n] = {"first_after_warmup_mb": round(first, 1), "last_mb": round(last, 1),
                      "max_mb": round(mx, 1),
                      "growth_pct": round((last - first) / first * 100, 1),
                      "series": s}
        minutes = []
        for k in sorted(st.minutes):
            m = st.minutes[k]
            minutes.append({"minute": k + 1, "ok": m["ok"], "fail": m["fail"],
                            "p50_ms": _r(pct(m["lat"], 50)), "p99_ms": _r(pct(m["lat"], 99)),
                            "stream_p50_ms": _r(pct(m["lat_stream"], 50)),
                            "ttft_p50_ms": _r(pct(m["ttft"], 50)),
                            "ttft_p99_ms": _r(pct(m["ttft"], 99))})
        out = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": {
                   k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
               "elapsed_s": round(elapsed, 1), "sent": st.sent, "ok": st.ok,
               "fail": st.fail, "skipped": st.skipped, "errors": dict(st.errors),
               "achieved_rps": round(st.sent / elapsed, 1),
               "max_inflight": st.max_inflight_seen, "rss": rss, "minutes": minutes,
               "logs": logs, "notes": notes}
        a.output.write_text(json.dumps(out, indent=1))

        print(f"\nsoak: edge -> router -> worker -> mock, {a.rate:g} req/s offered "
              f"({a.stream_fraction:.0%} streaming, mock {a.tokens} tokens, "
              f"{a.token_delay:g} ms/token), {elapsed:.0f} s")
        print(f"sent {st.sent} ({st.sent / elapsed:.1f} req/s), ok {st.ok}, failed {st.fail}, "
              f"skipped (>{a.max_inflight} in flight) {st.skipped}, max in flight "
              f"{st.max_inflight_seen}")
        print("errors: " + (", ".join(f"{k}: {v}" for k, v in st.errors.items()) or "none"))
        print(f"\nRSS (MB), sampled every {a.rss_interval:g} s; growth = last vs first "
              f"sample after {a.rss_warmup:g} s")
        print(f"{'process':8} {'first':>8} {'last':>8} {'max':>8} {'growth':>8}")
        for n, r in rss.items():
            print(f"{n:8} {r['first_after_warmup_mb']:8.1f} {r['last_mb']:8.1f} "
                  f"{r['max_mb']:8.1f} {r['growth_pct']:7.1f}%")
        print("\nper minute (latency of all ok requests, ms; TTFT of the streaming ones)")
        print(f"{'min':>4} {'ok':>6} {'fail':>5} {'p50':>7} {'p99':>7} {'ttft50':>7} "
              f"{'ttft99':>7}")
        for m in minutes:
            print(f"{m['minute']:4} {m['ok']:6} {m['fail']:5} {_f(m['p50_ms'])} "
                  f"{_f(m['p99_ms'])} {_f(m['ttft_p50_ms'])} {_f(m['ttft_p99_ms'])}")
        for n in notes:
            print("note: " + n)
        print("\nlogs: " + "; ".join(f"{n}: {v['lines']} lines {v['levels']}"
                                      for n, v in logs.items()))
        return 0 if st.fail == 0 and not any("DIED" in n for n in notes) else 1
    finally:
        stop.set()
        for p in reversed(procs):
            p.stop()
        if not a.keep_tmp:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _f(v: float | None) -> str:
    return f"{v:7.2f}" if v is not None else f"{'-':>7}"


if __name__ == "__main__":
    sys.exit(main())
