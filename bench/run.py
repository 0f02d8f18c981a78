"""The eldric hop benchmark: mock backend direct vs. one eldric worker hop vs. one nginx hop
vs. an eldric router in front of the worker vs. an eldric edge (HTTP and HTTPS) in front of
that router.

    python bench/run.py [--duration 4] [--warmup 1] [--quick] [--profile]

Starts, each in its own process (and process group):
  - the mock backend        python -m eldric.mock --tokens 16 --token-delay 0
  - an eldric worker        eldric --role worker --backend vllm --backend-url <mock>
                            (logging at info and metrics on: the realistic configuration)
  - nginx                   worker_processes 1, upstream keepalive 64, proxy_buffering off
  - an eldric router        eldric --role router --workers <worker> --strategy round_robin
  - two eldric edges        eldric --role edge --routers <router> --api-key sk-bench, rate
                            limits on (but far too high to trip); one --no-tls --http-port,
                            one HTTPS (--port --cert --key, a trustme test certificate)
then measures every target with bench/loadgen.py (and wrk, if installed), prints a table,
writes bench/results/latest.json and stops everything it started. See bench/README.md.

The code is split by what it holds: procs.py (starting, pinning and stopping processes),
measure.py (load generator, wrk, CPU accounting, py-spy), report.py (table and summary).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when imported from elsewhere

from measure import (BODY, PATH, RESULTS, children_cpu, measured,  # noqa: E402
                     pyspy_profile, run_loadgen, run_wrk, sanity, wrk_script)
from procs import (Proc, free_port, log, log_summary, make_cert, set_affinity,  # noqa: E402
                   start_edge, start_mock, start_nginx, start_router, start_worker)
from report import TARGETS, summary, summary_text, table  # noqa: E402

API_KEY = "sk-bench"  # the edges require it; every request to them carries it


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="eldric hop benchmark (see bench/README.md)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each")
    p.add_argument("--max-requests", type=int, default=300_000,
                   help="cap per loadgen measurement (warm-up included)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1.5 s measurements, 0.5 s warm-up, no client calibration")
    p.add_argument("--client", choices=("auto", "raw", "aiohttp"), default="auto",
                   help="python client; auto = whichever is faster against the mock at c=64")
    p.add_argument("--no-wrk", action="store_true", help="skip the wrk measurements")
    p.add_argument("--worker-log-format", choices=("json", "console"), default="json",
                   help="worker (router, edges) --log-format (json falls back to console if "
                        "the worker cannot start with it)")
    p.add_argument("--pin", choices=("split", "none"), default="split",
                   help="c=1 runs: split = load generator on one core, proxies and mock on "
                        "the other (reproducible); none = let the scheduler place them")
    p.add_argument("--profile", action="store_true",
                   help="after measuring, py-spy the worker during an extra c=64 run")
    p.add_argument("--keep-tmp", action="store_true",
                   help="keep the temporary directory (process logs, nginx.conf) at the end")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    a = p.parse_args()
    if a.quick:
        a.duration, a.warmup = 1.5, 0.5
    if not (0 < a.duration <= 60 and 0 <= a.warmup <= 10):
        p.error("--duration must be in (0, 60], --warmup in [0, 10]")
    return a


def measure_all(a: argparse.Namespace, urls: dict[str, str], servers: dict[str, Proc],
                client: str, wrk: str | None, opts: dict[str, dict], notes: list[str]) -> tuple:
    """Every target: c=1, stream c=1, c=64 python, c=64 wrk. `opts[target]` holds the
    headers and cafile for the python client and the wrk script. Returns (results, pin,
    client_cpus, server_cpus)."""
    common = dict(duration=a.duration, warmup=a.warmup, max_requests=a.max_requests,
                  client=client)
    results: dict = {}
    all_cpus = set(os.sched_getaffinity(0))
    pin = a.pin == "split" and len(all_cpus) >= 2
    client_cpus = {min(all_cpus)} if pin else None
    server_cpus = (all_cpus - client_cpus) if pin else all_cpus
    if a.pin == "split" and not pin:
        notes.append("only one CPU: no pinning")
    for t in TARGETS:
        url = urls[t]
        lg = dict(headers=opts[t]["headers"], cafile=opts[t]["cafile"])
        r = results[t] = {}
        # c=1: latency. Pinned, so that every target gets the same placement: a
        # cross-core wake-up costs ~0.05-0.1 ms on this kind of VM, as much as a hop.
        if pin:
            for proc in servers.values():
                set_affinity(proc, server_cpus)  # type: ignore[arg-type]
        log(f"{t}: c=1" + (f" (client on cpu {sorted(client_cpus)}, servers on "
                           f"{sorted(server_cpus)})" if pin else ""))
        r["c1"] = measured(run_loadgen, servers, url=url, concurrency=1, stream=False,
                           cpus=client_cpus, **lg, **common)
        log(f"{t}: stream c=1 (TTFT)")
        r["stream_c1"] = measured(run_loadgen, servers, url=url, concurrency=1,
                                  stream=True, cpus=client_cpus, **lg, **common)
        # c=64: throughput. Unpinned: client, proxies and mock share both cores.
        if pin:
            for proc in servers.values():
                set_affinity(proc, all_cpus)
        log(f"{t}: c=64 python ({client})")
        r["c64_py"] = measured(run_loadgen, servers, url=url, concurrency=64,
                               stream=False, **lg, **common)
        if wrk:
            log(f"{t}: c=64 wrk")
            r["c64_wrk"] = measured(run_wrk, servers, wrk=wrk, script=opts[t]["script"],
                                    url=url,
                                    concurrency=64, duration=a.duration, warmup=a.warmup)
        for k, v in r.items():
            if v.get("failures"):
                notes.append(f"{t} {k}: {v['failures']} failures: non200={v['non200']} "
                             f"errors={v['errors']}")
            if v.get("warmup_failures"):
                notes.append(f"{t} {k}: {v['warmup_failures']} failures during warm-up")
            if v.get("stopped_by_count"):
                notes.append(f"{t} {k}: stopped by --max-requests before the duration")
        for name, proc in servers.items():
            if not proc.alive():
                raise RuntimeError(f"{name} died during the {t} measurements:\n"
                                   f"{proc.stderr_tail(8)}")
    return results, pin, client_cpus, server_cpus


def main() -> int:
    a = parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    t_run = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="eldric-bench-"))
    os.chmod(tmp, 0o755)  # nginx's worker runs as nobody
    procs: list[Proc] = []
    notes: list[str] = []
    wrk = None if a.no_wrk else shutil.which("wrk")
    if not a.no_wrk and not wrk:
        notes.append("wrk not installed (apt-get install -y wrk): c=64 from python only")
    sys_cpu0 = psutil.cpu_times()
    children0 = children_cpu()
    try:
        ports = {n: free_port() for n in ("mock", "worker", "nginx", "router", "edge",
                                          "edge_tls")}
        log("starting " + ", ".join(f"{n} :{p}" for n, p in ports.items()) + f" (tmp {tmp})")
        mock = start_mock(tmp, ports["mock"], 16, 0, procs)
        worker, log_format = start_worker(tmp, ports["worker"], ports["mock"],
                                          a.worker_log_format, procs, notes)
        nginx = start_nginx(tmp, ports["nginx"], ports["mock"], procs)
        router = start_router(tmp, ports["router"], ports["worker"], log_format, procs,
                              PATH, BODY)
        ca, cert = make_cert(tmp)
        edge, edge_base = start_edge("edge", tmp, ports["edge"], ports["router"], log_format,
                                     procs, PATH, BODY, API_KEY)
        edge_tls, edge_tls_base = start_edge("edge_tls", tmp, ports["edge_tls"],
                                             ports["router"], log_format, procs, PATH, BODY,
                                             API_KEY, tls=(ca, cert))

        urls = {"direct": f"http://127.0.0.1:{ports['mock']}{PATH}",
                "worker": f"http://127.0.0.1:{ports['worker']}{PATH}",
                "nginx": f"http://127.0.0.1:{ports['nginx']}{PATH}",
                "router": f"http://127.0.0.1:{ports['router']}{PATH}",
                "edge": f"{edge_base}{PATH}",
                "edge_tls": f"{edge_tls_base}{PATH}"}
        servers = {"mock": mock, "worker": worker, "nginx": nginx, "router": router,
                   "edge": edge, "edge_tls": edge_tls}
        auth = {"Authorization": f"Bearer {API_KEY}"}
        plain_script = wrk_script(tmp / "post.lua", BODY)
        auth_script = wrk_script(tmp / "post-auth.lua", BODY, auth)
        opts = {t: {"headers": None, "cafile": None, "script": plain_script} for t in urls}
        opts["edge"] = {"headers": auth, "cafile": None, "script": auth_script}
        opts["edge_tls"] = {"headers": auth, "cafile": ca, "script": auth_script}
        checks = {t: sanity(u, opts[t]["headers"], opts[t]["cafile"])
                  for t, u in urls.items()}
        for t, c in checks.items():
            if not (c["plain"]["ok"] and c["stream"]["ok"]):
                notes.append(f"sanity check failed for {t}: {c}")
                log(notes[-1])

        # Which python client? The faster one against the mock at c=64.
        calibration = {}
        client = a.client
        if client == "auto":
            if a.quick:
                client = "raw"
            else:
                for cl in ("raw", "aiohttp"):
                    calibration[cl] = run_loadgen(urls["direct"], concurrency=64,
                                                  duration=2, warmup=0.5,
                                                  max_requests=a.max_requests, stream=False,
                                                  client=cl)["rps"]
                client = max(calibration, key=calibration.get)
                log(f"client calibration vs mock at c=64 (rps): {calibration} -> {client}")

        results, pin, client_cpus, server_cpus = measure_all(a, urls, servers, client, wrk,
                                                             opts, notes)
        primary = "c64_wrk" if wrk else "c64_py"
        summ = summary(results, primary)

        profile = None
        if a.profile:
            log("profiling the worker with py-spy during a c=64 run")
            profile = pyspy_profile(worker.pid, urls["worker"], tmp,
                                    max(3.0, a.duration), client)

        # the eldric processes' own logs: how many lines, any warnings/errors
        eldric_logs = {"worker": log_summary(worker, log_format, notes),
                       "router": log_summary(router, log_format, notes),
                       "edge": log_summary(edge, log_format, notes),
                       "edge_tls": log_summary(edge_tls, log_format, notes)}
        nginx_err = (tmp / "nginx-error.log").read_text(errors="replace") \
            if (tmp / "nginx-error.log").exists() else ""
        if nginx_err.strip():
            notes.append("nginx error log:\n" + nginx_err[-1500:])
    finally:
        for proc in reversed(procs):
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                log(f"stopping {proc.name}: {exc!r}")
    leftovers = [p.name for p in procs if p.alive()]
    if leftovers:
        notes.append(f"processes still alive after stop: {leftovers}")

    elapsed = time.perf_counter() - t_run
    sys_cpu1 = psutil.cpu_times()
    busy = sum(getattr(sys_cpu1, f) - getattr(sys_cpu0, f)
               for f in ("user", "system", "nice", "irq", "softirq"))
    ours = children_cpu() - children0  # everything we started, reaped
    # ours also counts the mock/worker/nginx/router now they are reaped, and ourselves:
    me = resource.getrusage(resource.RUSAGE_SELF)
    ours += me.ru_utime + me.ru_stime
    foreign = max(0.0, busy - ours)
    if foreign > 0.05 * elapsed:
        notes.append(f"other processes used ~{foreign:.1f} CPU-s during the run "
                     f"({100 * foreign / elapsed:.0f}% of a core): figures may be noisy")

    print()
    print(f"eldric hop benchmark: {a.duration:g} s per measurement after {a.warmup:g} s "
          f"warm-up; {os.cpu_count()} cores shared by client, proxies and mock; "
          f"python client: {client}" + (f" (calibration rps {calibration})" if calibration else ""))
    print("c=1 runs: " + (f"load generator pinned to cpu {sorted(client_cpus)}, mock/worker/"
                          f"nginx/router/edges to cpu {sorted(server_cpus)}" if pin
                          else "not pinned")
          + "; c=64 runs: not pinned")
    print(f"worker: --backend vllm, --log-format {log_format} --log-level info, metrics on; "
          f"nginx: 1 worker, upstream keepalive 64; mock: 16 tokens, no delay; router: "
          f"--strategy round_robin, the worker as its only static worker, same logging; "
          f"edges: the router as their only router, --api-key required (sent by every "
          f"request), rate limits on at 1e8 rpm, same logging; HTTPS edge: trustme cert, "
          f"keep-alive connections (one handshake per connection)")
    print()
    print(table(results, primary.removeprefix("c64_")))
    print(summary_text(summ, results))
    for name, lg in eldric_logs.items():
        print(f"{name} log: {lg['lines']} lines, {lg['bytes'] / 1e6:.1f} MB, "
              f"levels {lg['levels']}")
    if profile:
        print()
        if "error" in profile:
            print(f"py-spy: {profile['error']}")
        else:
            print(f"py-spy on the worker at c=64 ({profile['samples']} samples, "
                  f"{profile['rps_while_profiled']:.0f} rps while profiled); top self time:")
            for row in profile["self"][:15]:
                print(f"  {row['pct']:5.1f}%  {row['frame']}")
            print("  by package of the leaf frame: " + ", ".join(
                f"{r['frame']} {r['pct']:.0f}%" for r in profile["by_package"][:8]))
    if notes:
        print()
        print("notes:")
        for n in notes:
            print("  - " + n.replace("\n", "\n    "))
    print(f"\ntotal run time {elapsed:.1f} s; results in {a.output}"
          + (f"; process logs kept in {tmp}" if a.keep_tmp else ""))

    doc = {"meta": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "host": platform.node(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "duration_s": a.duration,
                    "warmup_s": a.warmup, "max_requests": a.max_requests,
                    "python_client": client, "c1_pinning": a.pin if pin else "none",
                    "client_calibration_rps_c64": calibration,
                    "wrk": bool(wrk), "primary_c64": primary,
                    "worker_log": eldric_logs["worker"], "router_log": eldric_logs["router"],
                    "edge_log": eldric_logs["edge"], "edge_tls_log": eldric_logs["edge_tls"],
                    "sanity": checks,
                    "foreign_cpu_s": round(foreign, 2), "elapsed_s": round(elapsed, 1)},
           "results": results, "summary": summ, "profile": profile, "notes": notes}
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(doc, indent=2) + "\n")
    if not a.keep_tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
