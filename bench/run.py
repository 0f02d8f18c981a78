"""The eldric hop benchmark: mock backend direct vs. one eldric worker hop vs. one nginx hop.

    python bench/run.py [--duration 5] [--warmup 1] [--quick] [--profile]

Starts, each in its own process (and process group):
  - the mock backend        python -m eldric.mock --tokens 16 --token-delay 0
  - an eldric worker        eldric --role worker --backend vllm --backend-url <mock>
                            (logging at info and metrics on: the realistic configuration)
  - nginx                   worker_processes 1, upstream keepalive 64, proxy_buffering off
then measures every target with bench/loadgen.py (and wrk, if installed), prints a table,
writes bench/results/latest.json and stops everything it started. See bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
LOADGEN = BENCH / "loadgen.py"
RESULTS = BENCH / "results"
PATH = "/v1/chat/completions"
BODY = {"model": "eldric-mock",
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}
TARGETS = ("direct", "worker", "nginx")
LABELS = {"direct": "mock direct", "worker": "eldric worker hop", "nginx": "nginx hop"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------- processes


class Proc:
    """A process we started, in its own session (= its own process group)."""

    def __init__(self, name: str, argv: list[str], stderr_path: Path | None):
        self.name = name
        self.argv = argv
        self.stderr_path = stderr_path
        err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        try:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=err,
                                          start_new_session=True)
        finally:
            if stderr_path:
                err.close()  # type: ignore[union-attr]
        self.pid = self.popen.pid
        self.ps = psutil.Process(self.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """user+system CPU of the process and its live children (nginx's worker)."""
        total = 0.0
        try:
            procs = [self.ps, *self.ps.children(recursive=True)]
        except psutil.Error:
            return 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def stderr_tail(self, n: int = 5) -> str:
        if not self.stderr_path or not self.stderr_path.exists():
            return ""
        lines = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        """SIGTERM to our own process group, then SIGKILL if it lingers."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)  # the group id is our child's pid
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop on SIGTERM; SIGKILL")
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=5)


def http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def set_affinity(proc: Proc, cpus: set[int]) -> None:
    """Pin every thread of the process and of its children (nginx's worker) to `cpus`."""
    try:
        procs = [proc.ps, *proc.ps.children(recursive=True)]
    except psutil.Error:
        return
    for p in procs:
        try:
            for t in p.threads():
                try:
                    os.sched_setaffinity(t.id, cpus)
                except OSError:
                    pass
        except psutil.Error:
            pass


def wait_healthy(proc: Proc, url: str, limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    last = "no answer"
    for _ in range(int(limit_s / 0.1) + 1):  # bounded in count and time
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with code {proc.popen.returncode}:\n"
                               f"{proc.stderr_tail(8)}")
        try:
            status, _ = http_get(url, timeout=0.5)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {url} not healthy within {limit_s:g}s ({last})")


def nginx_conf(tmp: Path, port: int, mock_port: int) -> Path:
    conf = f"""
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy_temp;
    fastcgi_temp_path {tmp}/fastcgi_temp;
    uwsgi_temp_path {tmp}/uwsgi_temp;
    scgi_temp_path {tmp}/scgi_temp;
    # nginx closes a client keep-alive connection after 1000 requests by default; eldric
    # (aiohttp) does not, so lift the cap on both sides for a like-for-like comparison.
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    upstream mock {{
        server 127.0.0.1:{mock_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""
    path = tmp / "nginx.conf"
    path.write_text(conf)
    return path


# ----------------------------------------------------------------------- measurement


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_loadgen(url: str, *, concurrency: int, duration: float, warmup: float,
                max_requests: int, stream: bool, client: str,
                cpus: set[int] | None = None) -> dict:
    argv = [sys.executable, str(LOADGEN), "--url", url, "-c", str(concurrency),
            "-d", str(duration), "-w", str(warmup), "-n", str(max_requests),
            "--client", client]
    if stream:
        argv.append("--stream")
    before = _children_cpu()
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=warmup + duration + 40, check=False,
                         preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed ({out.returncode}): {out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["client_cpu_s"] = round(_children_cpu() - before, 3)
    res["client_cpus"] = sorted(cpus) if cpus else "any"
    return res


WRK_LUA = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"non2xx":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,' ..
    '"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def run_wrk(wrk: str, script: Path, url: str, *, concurrency: int, duration: float,
            warmup: float) -> dict:
    """One wrk thread (a 2-core box has no core to spare); a separate warm-up run first.
    wrk is bounded by -d and by the subprocess timeout (it has no request-count cap)."""
    def once(d: float) -> tuple[dict, float]:
        argv = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(d))}s", "--timeout", "5s",
                "-s", str(script), url]
        before = _children_cpu()
        out = subprocess.run(argv, capture_output=True, text=True, timeout=d + 30,
                             check=False)
        m = re.search(r"^WRKJSON (.*)$", out.stdout, re.M)
        if out.returncode != 0 or not m:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-800:]}"
                               f"{out.stderr[-800:]}")
        return json.loads(m.group(1)), _children_cpu() - before

    warm_requests = once(warmup)[0]["requests"] if warmup > 0 else 0
    w, cpu = once(duration)
    errors = {k: w[k] for k in ("connect", "read", "write", "timeout") if w[k]}
    secs = w["duration_us"] / 1e6
    ok = w["requests"] - w["non2xx"]
    return {
        "client": "wrk", "concurrency": concurrency, "window_s": round(secs, 3),
        "completed": ok, "requests": w["requests"], "warmup_requests": warm_requests,
        "rps": round(ok / secs, 1) if secs else 0.0,
        "p50_ms": w["p50_us"] / 1000, "p90_ms": w["p90_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000, "max_ms": w["max_us"] / 1000,
        "failures": w["non2xx"] + sum(errors.values()),
        "non200": {"non-2xx/3xx": w["non2xx"]} if w["non2xx"] else {},
        "errors": errors, "client_cpu_s": round(cpu, 3),
    }


def measured(fn, servers: dict[str, Proc], **kw) -> dict:
    """Run one measurement and add the CPU each server process used meanwhile."""
    before = {n: p.cpu_seconds() for n, p in servers.items()}
    t0 = time.perf_counter()
    res = fn(**kw)
    wall = time.perf_counter() - t0
    # every request sent while the CPU was counted (warm-up included)
    total = res.get("issued") or (res.get("requests", 0) + res.get("warmup_requests", 0))
    res["server_cpu"] = {}
    for n, p in servers.items():
        used = p.cpu_seconds() - before[n]
        res["server_cpu"][n] = {
            "cpu_s": round(used, 3), "cpu_pct": round(100 * used / wall, 1),
            # per request sent by the client (warm-up included), in microseconds
            "us_per_req": round(1e6 * used / total, 1) if total else None}
    return res


def sanity(url: str) -> dict:
    """One plain and one streaming request, checked for shape."""
    out: dict = {}
    req = urllib.request.Request(url, data=json.dumps(BODY).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read()
            out["plain"] = {"status": r.status,
                            "ok": r.status == 200 and b'"choices"' in body}
    except urllib.error.HTTPError as e:
        out["plain"] = {"status": e.code, "ok": False, "body": e.read()[:300].decode()}
    sreq = urllib.request.Request(url, data=json.dumps({**BODY, "stream": True}).encode(),
                                  headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(sreq, timeout=5) as r:
            body = r.read()
            out["stream"] = {"status": r.status, "events": body.count(b"data:"),
                             "ok": r.status == 200 and body.rstrip().endswith(b"[DONE]")}
    except urllib.error.HTTPError as e:
        out["stream"] = {"status": e.code, "ok": False, "body": e.read()[:300].decode()}
    return out


def pyspy_profile(pid: int, url: str, tmp: Path, seconds: float, client: str) -> dict:
    """py-spy on the worker during a c=64 run: the hottest leaf frames and packages.

    --nonblocking: py-spy reads the worker's memory without stopping it. Its coroutine
    stacks come out torn (parents mixed up), so only leaf frames are used. The blocking
    mode gives whole stacks but is biased: a ptrace stop lands when the worker returns from
    a syscall, so syscall sites (getpid() inside asyncio.get_running_loop(), send, the log
    write, os.urandom) look far hotter than they are. Time in C (uvloop, aiohttp's C
    parsers) counts for the Python frame that called it; the loop itself is `Runner.run`.
    """
    pyspy = shutil.which("py-spy")
    if not pyspy:
        return {"error": "py-spy not installed (pip install py-spy)"}
    raw = tmp / "worker.folded"
    rec = subprocess.Popen([pyspy, "record", "--pid", str(pid), "--duration",
                            str(int(seconds)), "--rate", "200", "--nonblocking",
                            "--format", "raw", "--output", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
    try:
        time.sleep(0.3)
        load = run_loadgen(url, concurrency=64, duration=seconds + 1, warmup=0,
                           max_requests=500_000, stream=False, client=client)
        _, err = rec.communicate(timeout=seconds + 30)
    finally:
        if rec.poll() is None:
            os.killpg(rec.pid, signal.SIGTERM)
            rec.wait(timeout=10)
    if not raw.exists():
        return {"error": f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"}
    self_t: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        leaf = re.sub(r":\d+\)$", ")", stack.split(";")[-1]) if stack else "?"
        self_t[leaf] += count
        m = re.search(r"\(([^()]*)\)$", leaf)
        path = m.group(1) if m else leaf
        if path.startswith("eldric/"):
            pkg = "/".join(path.split("/")[:2])
        else:
            pkg = path.split("/")[0].removesuffix(".py")
        packages[pkg] += count
    shutil.copy(raw, RESULTS / "pyspy-worker.folded")

    def top(c: collections.Counter[str], n: int) -> list[dict]:
        return [{"frame": f, "pct": round(100 * k / total, 1)} for f, k in c.most_common(n)]

    return {"samples": total, "rps_while_profiled": load["rps"], "self": top(self_t, 25),
            "by_package": top(packages, 15)}


# ---------------------------------------------------------------------------- report


def fmt(v: float | None, nd: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def table(results: dict, primary64: str) -> str:
    head = ["target", "c=1 rps", "p50 ms", "p99 ms",
            "c=64 rps", "p50 ms", "p99 ms",
            "c=64 rps", "p50 ms", "p99 ms",
            "TTFT p50", "TTFT p99", "fail"]
    rows = []
    for t in TARGETS:
        r = results[t]
        w = r.get("c64_wrk") or {}
        fails = sum((r.get(k) or {}).get("failures", 0)
                    for k in ("c1", "c64_py", "c64_wrk", "stream_c1"))
        rows.append([LABELS[t],
                     fmt(r["c1"]["rps"], 0), fmt(r["c1"]["p50_ms"], 3), fmt(r["c1"]["p99_ms"], 3),
                     fmt(r["c64_py"]["rps"], 0), fmt(r["c64_py"]["p50_ms"]),
                     fmt(r["c64_py"]["p99_ms"]),
                     fmt(w.get("rps"), 0), fmt(w.get("p50_ms")), fmt(w.get("p99_ms")),
                     fmt(r["stream_c1"]["ttft_p50_ms"], 3),
                     fmt(r["stream_c1"]["ttft_p99_ms"], 3), str(fails)])
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                         for i, c in enumerate(cells))

    # group titles over columns 1-3, 4-6, 7-9, 10-12
    groups = [" " * widths[0]]
    for i, n, title in ((1, 3, "c=1, python"), (4, 3, "c=64, python"), (7, 3, "c=64, wrk"),
                        (10, 2, "stream c=1")):
        span = sum(widths[i:i + n]) + 2 * (n - 1)
        groups.append(f" {title} ".center(span, "-"))
    out = ["  ".join(groups), line(head), "-" * len(line(head)), *(line(r) for r in rows),
           "", "latencies in ms; rps = 200 replies/s; fail = non-200 replies + transport "
           f"errors over all four measurements; c=64 primary: {primary64}"]
    return "\n".join(out)


def summary(results: dict, primary64: str) -> dict:
    d, w, n = (results[t] for t in TARGETS)
    s: dict = {"added_p50_ms_c1": {
        "worker": round(w["c1"]["p50_ms"] - d["c1"]["p50_ms"], 3),
        "nginx": round(n["c1"]["p50_ms"] - d["c1"]["p50_ms"], 3)},
        "added_ttft_p50_ms_c1": {
        "worker": round(w["stream_c1"]["ttft_p50_ms"] - d["stream_c1"]["ttft_p50_ms"], 3),
        "nginx": round(n["stream_c1"]["ttft_p50_ms"] - d["stream_c1"]["ttft_p50_ms"], 3)}}
    ratio = {}
    for key in ("c64_wrk", "c64_py"):
        if w.get(key) and n.get(key) and n[key]["rps"]:
            ratio[key.removeprefix("c64_")] = round(w[key]["rps"] / n[key]["rps"], 3)
    s["worker_over_nginx_rps_c64"] = ratio
    s["primary_c64"] = primary64
    cpu = {}
    src = primary64 if w.get(primary64) else "c64_py"
    for t, proxy in (("worker", "worker"), ("nginx", "nginx"), ("direct", None)):
        sc = results[t][src]["server_cpu"]
        cpu[t] = {"proxy_us_per_req": sc[proxy]["us_per_req"] if proxy else None,
                  "proxy_cpu_pct": sc[proxy]["cpu_pct"] if proxy else None,
                  "mock_us_per_req": sc["mock"]["us_per_req"],
                  "mock_cpu_pct": sc["mock"]["cpu_pct"],
                  "client_cpu_s": results[t][src].get("client_cpu_s")}
    s["cpu_c64"] = {"source": src, **cpu}
    return s


def summary_text(s: dict, results: dict) -> str:
    a, t = s["added_p50_ms_c1"], s["added_ttft_p50_ms_c1"]
    d = results["direct"]
    lines = [
        f"added p50 latency at c=1 vs direct ({fmt(d['c1']['p50_ms'], 3)} ms): "
        f"worker {a['worker']:+.3f} ms, nginx {a['nginx']:+.3f} ms"
        + (f"  (worker hop = {a['worker'] / a['nginx']:.1f}x an nginx hop)"
           if a["nginx"] > 0 else ""),
        f"added TTFT p50 at c=1 vs direct ({fmt(d['stream_c1']['ttft_p50_ms'], 3)} ms): "
        f"worker {t['worker']:+.3f} ms, nginx {t['nginx']:+.3f} ms",
        "worker/nginx rps ratio at c=64: " + ", ".join(
            f"{k} {v:.3f}" for k, v in s["worker_over_nginx_rps_c64"].items())
        + f"   (primary: {s['primary_c64'].removeprefix('c64_')})",
    ]
    c = s["cpu_c64"]
    lines.append(
        f"server CPU per request at c=64 ({c['source'].removeprefix('c64_')} run): "
        f"worker {fmt(c['worker']['proxy_us_per_req'], 0)} us "
        f"({fmt(c['worker']['proxy_cpu_pct'], 0)}% of a core), "
        f"nginx {fmt(c['nginx']['proxy_us_per_req'], 0)} us "
        f"({fmt(c['nginx']['proxy_cpu_pct'], 0)}%), "
        f"mock {fmt(c['direct']['mock_us_per_req'], 0)} us "
        f"({fmt(c['direct']['mock_cpu_pct'], 0)}% when hit directly)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def main() -> int:
    p = argparse.ArgumentParser(description="eldric hop benchmark (see bench/README.md)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each")
    p.add_argument("--max-requests", type=int, default=300_000,
                   help="cap per loadgen measurement (warm-up included)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1.5 s measurements, 0.5 s warm-up, no client calibration")
    p.add_argument("--client", choices=("auto", "raw", "aiohttp"), default="auto",
                   help="python client; auto = whichever is faster against the mock at c=64")
    p.add_argument("--no-wrk", action="store_true", help="skip the wrk measurements")
    p.add_argument("--worker-log-format", choices=("json", "console"), default="json",
                   help="worker --log-format (json falls back to console if the worker "
                        "cannot start with it)")
    p.add_argument("--pin", choices=("split", "none"), default="split",
                   help="c=1 runs: split = load generator on one core, proxy and mock on "
                        "the other (reproducible); none = let the scheduler place them")
    p.add_argument("--profile", action="store_true",
                   help="after measuring, py-spy the worker during an extra c=64 run")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    a = p.parse_args()
    if a.quick:
        a.duration, a.warmup = 1.5, 0.5
    if not (0 < a.duration <= 60 and 0 <= a.warmup <= 10):
        p.error("--duration must be in (0, 60], --warmup in [0, 10]")
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
    children0 = _children_cpu()
    try:
        mock_port, worker_port, nginx_port = free_port(), free_port(), free_port()
        log(f"starting mock :{mock_port}, worker :{worker_port}, nginx :{nginx_port} "
            f"(tmp {tmp})")
        mock = Proc("mock", [sys.executable, "-m", "eldric.mock", "--port", str(mock_port),
                             "--tokens", "16", "--token-delay", "0"], tmp / "mock.log")
        procs.append(mock)
        wait_healthy(mock, f"http://127.0.0.1:{mock_port}/health")

        worker = None
        log_format = a.worker_log_format
        for attempt in (a.worker_log_format, "console"):
            log_format = attempt
            data_dir = tmp / f"worker-data-{attempt}"
            worker = Proc("worker", [
                shutil.which("eldric") or "eldric", "--role", "worker", "--backend", "vllm",
                "--backend-url", f"http://127.0.0.1:{mock_port}", "--port", str(worker_port),
                "--bind", "127.0.0.1", "--data-dir", str(data_dir),
                "--log-format", attempt, "--log-level", "info"], tmp / f"worker-{attempt}.log")
            procs.append(worker)
            try:
                wait_healthy(worker, f"http://127.0.0.1:{worker_port}/health")
                break
            except RuntimeError as exc:
                worker.stop()
                if attempt == "console":
                    raise
                tail = [ln for ln in worker.stderr_tail(3).splitlines() if ln.strip()]
                notes.append(f"worker failed to start with --log-format {attempt} "
                             f"({tail[-1] if tail else exc}); measured with --log-format "
                             "console instead (logging still at info)")
                log(notes[-1])
        assert worker is not None

        conf = nginx_conf(tmp, nginx_port, mock_port)
        (tmp / "logs").mkdir(exist_ok=True)
        nginx = Proc("nginx", [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf),
                               "-p", str(tmp), "-e", str(tmp / "nginx-error.log")],
                     tmp / "nginx-stderr.log")
        procs.append(nginx)
        wait_healthy(nginx, f"http://127.0.0.1:{nginx_port}/health")

        urls = {"direct": f"http://127.0.0.1:{mock_port}{PATH}",
                "worker": f"http://127.0.0.1:{worker_port}{PATH}",
                "nginx": f"http://127.0.0.1:{nginx_port}{PATH}"}
        servers = {"mock": mock, "worker": worker, "nginx": nginx}
        checks = {t: sanity(u) for t, u in urls.items()}
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

        script = tmp / "post.lua"
        script.write_text(WRK_LUA % json.dumps(BODY, separators=(",", ":")))
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
            r = results[t] = {}
            # c=1: latency. Pinned, so that every target gets the same placement: a
            # cross-core wake-up costs ~0.05-0.1 ms on this kind of VM, as much as a hop.
            if pin:
                for proc in servers.values():
                    set_affinity(proc, server_cpus)  # type: ignore[arg-type]
            log(f"{t}: c=1" + (f" (client on cpu {sorted(client_cpus)}, servers on "
                               f"{sorted(server_cpus)})" if pin else ""))
            r["c1"] = measured(run_loadgen, servers, url=url, concurrency=1, stream=False,
                               cpus=client_cpus, **common)
            log(f"{t}: stream c=1 (TTFT)")
            r["stream_c1"] = measured(run_loadgen, servers, url=url, concurrency=1,
                                      stream=True, cpus=client_cpus, **common)
            # c=64: throughput. Unpinned: client, proxy and mock share both cores.
            if pin:
                for proc in servers.values():
                    set_affinity(proc, all_cpus)
            log(f"{t}: c=64 python ({client})")
            r["c64_py"] = measured(run_loadgen, servers, url=url, concurrency=64,
                                   stream=False, **common)
            if wrk:
                log(f"{t}: c=64 wrk")
                r["c64_wrk"] = measured(run_wrk, servers, wrk=wrk, script=script, url=url,
                                        concurrency=64, duration=a.duration,
                                        warmup=a.warmup)
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

        primary = "c64_wrk" if wrk else "c64_py"
        summ = summary(results, primary)

        profile = None
        if a.profile:
            log("profiling the worker with py-spy during a c=64 run")
            profile = pyspy_profile(worker.pid, urls["worker"], tmp,
                                    max(3.0, a.duration), client)

        # the worker's own log: how many lines, any warnings/errors
        wlog = worker.stderr_path.read_text(errors="replace") if worker.stderr_path else ""
        plain = re.sub(r"\x1b\[[0-9;]*m", "", wlog)
        levels = collections.Counter(re.findall(r'"level":"(\w+)"', plain)) + \
            collections.Counter(re.findall(r"^\S+ \[(\w+)\s*\]", plain, re.M))
        worker_log = {"format": log_format, "lines": wlog.count("\n"),
                      "bytes": len(wlog.encode()), "levels": dict(levels)}
        bad = {k: v for k, v in levels.items() if k in ("warning", "error", "critical")}
        if bad:
            notes.append(f"worker log has {bad}; last lines:\n" + "\n".join(
                ln for ln in wlog.splitlines() if "warning" in ln or "error" in ln)[-1500:])
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
    ours = _children_cpu() - children0  # everything we started, reaped
    # ours also counts the mock/worker/nginx now they are reaped, and ourselves:
    me = resource.getrusage(resource.RUSAGE_SELF)
    ours += me.ru_utime + me.ru_stime
    foreign = max(0.0, busy - ours)
    if foreign > 0.05 * elapsed:
        notes.append(f"other processes used ~{foreign:.1f} CPU-s during the run "
                     f"({100 * foreign / elapsed:.0f}% of a core): figures may be noisy")

    print()
    print(f"eldric hop benchmark: {a.duration:g} s per measurement after {a.warmup:g} s "
          f"warm-up; {os.cpu_count()} cores shared by client, proxy and mock; "
          f"python client: {client}" + (f" (calibration rps {calibration})" if calibration else ""))
    print("c=1 runs: " + (f"load generator pinned to cpu {sorted(client_cpus)}, mock/worker/"
                          f"nginx to cpu {sorted(server_cpus)}" if pin else "not pinned")
          + "; c=64 runs: not pinned")
    print(f"worker: --backend vllm, --log-format {log_format} --log-level info, metrics on; "
          f"nginx: 1 worker, upstream keepalive 64; mock: 16 tokens, no delay")
    print()
    print(table(results, primary.removeprefix("c64_")))
    print(summary_text(summ, results))
    print(f"worker log: {worker_log['lines']} lines, {worker_log['bytes'] / 1e6:.1f} MB, "
          f"levels {worker_log['levels']}")
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
    print(f"\ntotal run time {elapsed:.1f} s; results in {a.output}")

    doc = {"meta": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "host": platform.node(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "duration_s": a.duration,
                    "warmup_s": a.warmup, "max_requests": a.max_requests,
                    "python_client": client, "c1_pinning": a.pin if pin else "none",
                    "client_calibration_rps_c64": calibration,
                    "wrk": bool(wrk), "primary_c64": primary,
                    "worker_log": worker_log, "sanity": checks,
                    "foreign_cpu_s": round(foreign, 2), "elapsed_s": round(elapsed, 1)},
           "results": results, "summary": summ, "profile": profile, "notes": notes}
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(doc, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
