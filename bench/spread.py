"""What per-process in-flight counts do to a router of several processes (--processes).

    python bench/spread.py [--processes 2] [--concurrency 8] [--duration 5]

Each router process counts only its own requests in flight: least_connections ranks the
workers by what this process sent them, and each process holds its part of a worker's
cap (ceil(cap/N)). This measures the effect against one process: two eldric workers,
each on its own slow mock (streams of 20 tokens, 5 ms apart, ~100 ms a reply), a router
with --strategy least_connections and --max-concurrency CAP in front, and the Python
load generator holding `--concurrency` streams open, each on its own connection (the
kernel spreads connections over the processes). Printed per N: replies/s, p50 and p99,
each worker's share of the replies, the most requests a worker held at once (sampled
from its eldric_active_requests every 20 ms), and the replies that waited for room.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import BODY, PATH, run_loadgen  # noqa: E402
from procs import (Proc, eldric_exe, free_port, log, start_mock,  # noqa: E402
                   wait_healthy, wait_processes, wait_serving)

_ACTIVE = re.compile(r'^eldric_active_requests\{role="worker"\} (\S+)$', re.M)
_DONE = re.compile(r'^eldric_requests_total\{[^}]*route="/v1/chat/completions"[^}]*'
                   r'status="200"[^}]*\} (\S+)$', re.M)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=2) as r:
        return r.read().decode()


def start(tmp: Path, tag: str, argv: list[str], port: int, procs: list[Proc]) -> str:
    p = Proc(tag, [eldric_exe(), *argv, "--port", str(port), "--bind", "127.0.0.1",
                   "--data-dir", str(tmp / f"{tag}-data"), "--log-level", "warning"],
             tmp / f"{tag}.log")
    procs.append(p)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(p, url + "/health", limit_s=30)
    return url



def one(a: argparse.Namespace, n: int, tmp: Path) -> dict:
    procs: list[Proc] = []
    try:
        workers = []
        for i in range(2):
            mock = start_mock(tmp, free_port(), 20, 5, procs)
            mport = mock.argv[mock.argv.index("--port") + 1]
            workers.append(start(tmp, f"w{n}{i}", ["--role", "worker", "--backend", "vllm",
                                                   "--backend-url",
                                                   f"http://127.0.0.1:{mport}"],
                                 free_port(), procs))
        rport = free_port()
        router = start(tmp, f"router{n}", [
            "--role", "router", "--workers", ",".join(workers), "--strategy",
            "least_connections", "--max-concurrency", str(a.cap), "--processes", str(n)],
            rport, procs)
        wait_serving(procs[-1], router + PATH, BODY, request_timeout=10)
        wait_processes(router, n)
        before = [sum(map(float, _DONE.findall(scrape(w)))) for w in workers]
        peak = [0.0, 0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for i, w in enumerate(workers):
                    m = _ACTIVE.search(scrape(w))
                    if m:  # less the scrape itself, which the gauge counts
                        peak[i] = max(peak[i], float(m.group(1)) - 1)
                time.sleep(0.02)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        res = run_loadgen(router + PATH, concurrency=a.concurrency, duration=a.duration,
                          warmup=0.5, max_requests=100_000, stream=True, client="raw")
        stop.set()
        t.join(5)
        done = [sum(map(float, _DONE.findall(scrape(w)))) - b for w, b in zip(workers, before)]
        total = sum(done) or 1
        return {"n": n, "rps": res.get("rps"), "p50": res.get("p50_ms"),
                "p99": res.get("p99_ms"), "share": [round(100 * d / total) for d in done],
                "peak": peak, "failures": res.get("failures", 0)}
    finally:
        for p in reversed(procs):
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", type=int, default=2, help="N to compare with 1")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--cap", type=int, default=4, help="--max-concurrency per worker")
    ap.add_argument("--duration", type=float, default=5.0)
    a = ap.parse_args()
    if a.processes < 2 or a.concurrency < 1 or a.cap < 1 or a.duration <= 0:
        ap.error("--processes >= 2, --concurrency, --cap >= 1, --duration > 0")
    with tempfile.TemporaryDirectory() as d:
        rows = [one(a, n, Path(d)) for n in (1, a.processes)]
    log(f"router least_connections, 2 workers, cap {a.cap} each, c={a.concurrency} "
        f"streams (100 ms each), {a.duration:g} s")
    print(f"{'processes':>9} {'replies/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'share %':>9} {'peak in flight':>14} {'failed':>6}")
    for r in rows:
        print(f"{r['n']:>9} {r['rps']:>9.1f} {r['p50']:>7.1f} {r['p99']:>7.1f} "
              f"{'/'.join(map(str, r['share'])):>9} "
              f"{'/'.join(f'{p:g}' for p in r['peak']):>14} {r['failures']:>6}")


if __name__ == "__main__":
    main()
