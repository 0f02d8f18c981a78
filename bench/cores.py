"""Requests/s of one eldric edge or router at --processes 1 and at every core.

    python bench/cores.py [--duration 4] [--reps 2] [--only router,edge,edge_tls]

Each target alone in front of the mock (python -m eldric.mock --tokens 16, no delay):
`router` (--workers MOCK, round robin), `edge` (--routers MOCK, an API key required,
rate limits off) and `edge_tls` (the same on HTTPS: TLS makes the edge the busiest
process, so whether a second core helps shows there first; keep-alive connections, so
the handshakes are wrk's warm-up's). wrk (one thread, c=64, non-streaming chat) is the load. Nothing is
pinned: at N = every core the proxy's processes, the mock and wrk share the machine, as
they must on a box with no core to spare; so the table also gives each one's share of
the machine's CPU during the window (100 % = one core), which says what bounded the
figure. Interleaved repetitions (rep 1: every target at every N, rep 2: ...), medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import BODY, PATH, children_cpu, run_wrk, wrk_script  # noqa: E402
from procs import (Proc, eldric_exe, free_port, log, make_cert, start_mock,  # noqa: E402
                   wait_healthy, wait_processes, wait_serving)

KEY = "sk-bench"



def start(tmp: Path, name: str, n: int, mock_url: str, procs: list[Proc],
          cert: tuple[Path, Path] | None) -> tuple[Proc, str]:
    port = free_port()
    cafile = None
    common = ["--bind", "127.0.0.1", "--data-dir", str(tmp / f"{name}-{n}"),
              "--log-format", "json", "--log-level", "info", "--processes", str(n)]
    if name == "router":
        argv = ["--role", "router", "--workers", mock_url, "--port", str(port),
                "--strategy", "round_robin"]
        headers = None
    else:
        listen = ["--no-tls", "--http-port", str(port)]
        if name == "edge_tls":
            assert cert is not None
            cafile = cert[0]
            listen = ["--port", str(port), "--cert", str(cert[1]), "--key", str(cert[1])]
        argv = ["--role", "edge", *listen, "--routers", mock_url,
                "--api-key", KEY, "--global-rpm", "0", "--per-ip-rpm", "0",
                "--per-key-rpm", "0"]
        headers = {"Authorization": f"Bearer {KEY}"}
    p = Proc(f"{name}-{n}", [eldric_exe(), *argv, *common], tmp / f"{name}-{n}.log")
    procs.append(p)
    url = f"{'https' if cafile else 'http'}://127.0.0.1:{port}"
    wait_healthy(p, url + "/health", limit_s=30, cafile=cafile)
    wait_serving(p, url + PATH, BODY, headers=headers, cafile=cafile)
    wait_processes(url, n, cafile=cafile)
    return p, url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only", default="router,edge,edge_tls")
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n]
    if not names or set(names) - {"router", "edge", "edge_tls"} or a.reps < 1 \
            or a.duration <= 0:
        ap.error("--only router,edge,edge_tls; --reps >= 1; --duration > 0")
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("bench/cores.py needs wrk (apt-get install -y wrk)")
    cores = len(os.sched_getaffinity(0))
    counts = [1, cores] if cores > 1 else [1]
    procs: list[Proc] = []
    rows: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        try:
            mock = start_mock(tmp, free_port(), 16, 0, procs)
            mock_url = f"http://127.0.0.1:{mock.argv[mock.argv.index('--port') + 1]}"
            cert = make_cert(tmp) if "edge_tls" in names else None
            targets = {(nm, n): start(tmp, nm, n, mock_url, procs, cert)
                       for nm in names for n in counts}
            scripts = {nm: wrk_script(tmp / f"{nm}.lua", BODY,
                                      {"Authorization": f"Bearer {KEY}"}
                                      if nm.startswith("edge") else None) for nm in names}
            for rep in range(a.reps):
                for (nm, n), (proc, url) in targets.items():
                    log(f"rep {rep + 1}: {nm} --processes {n}")
                    before = {"proxy": proc.cpu_seconds(), "mock": mock.cpu_seconds(),
                              "wrk": children_cpu()}
                    t0 = time.perf_counter()
                    busy0 = psutil.cpu_times()
                    res = run_wrk(wrk, scripts[nm], url + PATH, concurrency=64,
                                  duration=a.duration, warmup=a.warmup)
                    wall = time.perf_counter() - t0
                    busy1 = psutil.cpu_times()
                    used = {"proxy": proc.cpu_seconds() - before["proxy"],
                            "mock": mock.cpu_seconds() - before["mock"],
                            "wrk": children_cpu() - before["wrk"]}
                    idle = (busy1.idle - busy0.idle) / wall
                    rows.setdefault((nm, n), []).append({
                        "rps": res["rps"], "failures": res["failures"],
                        **{k: 100 * v / wall for k, v in used.items()},
                        "idle": 100 * idle})
        finally:
            for p in reversed(procs):
                p.stop()
    print(f"eldric --processes 1 vs {cores} (every core), {cores} cores, wrk -t1 -c64, "
          f"{a.duration:g} s windows (warm-up and window both counted in the CPU shares), "
          f"medians of {a.reps}")
    print(f"{'target':<9} {'N':>3} {'req/s':>9} {'x N=1':>6} {'proxy %':>8} {'mock %':>7} "
          f"{'wrk %':>6} {'idle %':>7} {'failed':>6}")
    for nm in names:
        base = None
        for n in counts:
            rs = rows[(nm, n)]
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            base = base or med["rps"]
            print(f"{nm:<9} {n:>3} {med['rps']:>9,.0f} {med['rps'] / base:>6.2f} "
                  f"{med['proxy']:>8.0f} {med['mock']:>7.0f} {med['wrk']:>6.0f} "
                  f"{med['idle']:>7.0f} {sum(r['failures'] for r in rs):>6}")


if __name__ == "__main__":
    main()
