"""Measurements for the hop benchmark: the python load generator, wrk, server CPU per
measurement, sanity checks and the optional py-spy profile. Used by bench/run.py."""

from __future__ import annotations

import collections
import json
import os
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from procs import Proc

BENCH = Path(__file__).resolve().parent
LOADGEN = BENCH / "loadgen.py"
RESULTS = BENCH / "results"
PATH = "/v1/chat/completions"
BODY = {"model": "eldric-mock",
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _pinned(cpus: set[int] | None):  # type: ignore[no-untyped-def]
    """A preexec_fn that pins the child to `cpus` (None: no pinning)."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def run_loadgen(url: str, *, concurrency: int, duration: float, warmup: float,
                max_requests: int, stream: bool, client: str,
                cpus: set[int] | None = None, headers: dict[str, str] | None = None,
                cafile: Path | None = None) -> dict:
    argv = [sys.executable, str(LOADGEN), "--url", url, "-c", str(concurrency),
            "-d", str(duration), "-w", str(warmup), "-n", str(max_requests),
            "--client", client]
    if stream:
        argv.append("--stream")
    for k, v in (headers or {}).items():
        argv += ["--header", f"{k}: {v}"]
    if cafile:
        argv += ["--cafile", str(cafile)]
    before = children_cpu()
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=warmup + duration + 40, check=False,
                         preexec_fn=_pinned(cpus))
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed ({out.returncode}): {out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["client_cpu_s"] = round(children_cpu() - before, 3)
    res["client_cpus"] = sorted(cpus) if cpus else "any"
    return res


WRK_LUA = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
%s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"non2xx":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,' ..
    '"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk_script(path: Path, body: dict, headers: dict[str, str] | None = None) -> Path:
    """The wrk Lua script: POST `body` with `headers` (e.g. Authorization) on top."""
    extra = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}"
                      for k, v in (headers or {}).items())
    path.write_text(WRK_LUA % (json.dumps(body, separators=(",", ":")), extra))
    return path


def run_wrk(wrk: str, script: Path, url: str, *, concurrency: int, duration: float,
            warmup: float, cpus: set[int] | None = None) -> dict:
    """One wrk thread (a 2-core box has no core to spare); a separate warm-up run first.
    wrk is bounded by -d and by the subprocess timeout (it has no request-count cap).
    `cpus`: pin wrk to these cores."""
    def once(d: float) -> tuple[dict, float]:
        argv = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(d))}s", "--timeout", "5s",
                "-s", str(script), url]
        before = children_cpu()
        out = subprocess.run(argv, capture_output=True, text=True, timeout=d + 30,
                             check=False, preexec_fn=_pinned(cpus))
        m = re.search(r"^WRKJSON (.*)$", out.stdout, re.M)
        if out.returncode != 0 or not m:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-800:]}"
                               f"{out.stderr[-800:]}")
        return json.loads(m.group(1)), children_cpu() - before

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
        "client_cpus": sorted(cpus) if cpus else "any",
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


def sanity(url: str, headers: dict[str, str] | None = None,
           cafile: Path | None = None) -> dict:
    """One plain and one streaming request, checked for shape."""
    out: dict = {}
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    req = urllib.request.Request(url, data=json.dumps(BODY).encode(), headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            body = r.read()
            out["plain"] = {"status": r.status,
                            "ok": r.status == 200 and b'"choices"' in body}
    except urllib.error.HTTPError as e:
        out["plain"] = {"status": e.code, "ok": False, "body": e.read()[:300].decode()}
    sreq = urllib.request.Request(url, data=json.dumps({**BODY, "stream": True}).encode(),
                                  headers=hdrs)
    try:
        with urllib.request.urlopen(sreq, timeout=5, context=ctx) as r:
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


