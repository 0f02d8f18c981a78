"""eldric beside its peers: one run, one mock, every proxy on its own core, measured in turn.

    python bench/side.py [--reps 2] [--quick] [--only nginx,worker] [--duration 4]
                         [--processes N] [--json PATH]      (also: python -m bench.side)

Targets, all in front of the same mock (python -m eldric.mock --tokens 20 --token-delay 0):
  direct    the mock itself (the baseline for "added" latency)
  nginx     worker_processes 1, upstream keepalive 64 (bench/procs.py, as bench/run.py)
  relay     a bare aiohttp relay, one pooled ClientSession (bench/relay.py): the floor
  litellm   the LiteLLM proxy, only if `import litellm` works
  worker    eldric worker -> mock
  router    eldric router -> worker -> mock
  chain     eldric edge (API key, rate limits on) -> router -> worker -> mock
Workloads: non-streaming chat at c=64 under wrk (CPU us per request of the target's own
processes, req/s), the same streamed (22 data chunks + [DONE]; CPU us per streamed reply),
and c=1 latency with bench/loadgen.py (p50, p99, added p50 over direct).

The mock and the load generators run on the first core, every proxy on the last (with
--processes N > 1, the eldric processes on every core but the first). All proxies start
once; while one target is measured every other proxy is paused (SIGSTOP, SIGCONT after),
so a neighbour on the same core takes nothing. Repetitions are interleaved (rep 1: every
target, rep 2: every target, ...) and the medians reported. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # python bench/side.py and -m

from chain import AUTH, start_chain  # noqa: E402
from measure import (BODY, PATH, measured, run_loadgen, run_wrk, sanity,  # noqa: E402
                     wrk_script)
from procs import (Proc, free_port, log, set_affinity, start_mock,  # noqa: E402
                   start_nginx, wait_healthy, wait_serving)
from side_report import (ELDRIC, LABELS, TARGETS, TOKENS, WORKLOADS,  # noqa: E402
                         bound_notes, goals, goals_text, medians, ratio_table, ratios,
                         workload_tables)

BENCH = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="eldric side by side with nginx, a bare aiohttp "
                                            "relay and LiteLLM (see bench/README.md)")
    p.add_argument("--reps", type=int, default=2, help="interleaved repetitions (median)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1.5 s measurements after 0.5 s warm-up")
    p.add_argument("--only", default="",
                   help="comma-separated targets out of " + ",".join(TARGETS))
    p.add_argument("--processes", default="1",
                   help="passed as --processes to the eldric router and edge (N > 1: the "
                        "eldric processes run on every core but the load generator's)")
    p.add_argument("--max-requests", type=int, default=300_000,
                   help="cap per python load generator measurement (warm-up included)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write every figure here")
    p.add_argument("--keep-tmp", action="store_true", help="keep the process logs")
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.warmup = 1.5, 0.5
    if not 1 <= a.reps <= 20:
        p.error("--reps must be in 1..20")
    if not (0 < a.duration <= 60 and 0 <= a.warmup <= 10):
        p.error("--duration must be in (0, 60], --warmup in [0, 10]")
    if not re.fullmatch(r"auto|[1-9][0-9]*", a.processes):
        p.error(f"--processes must be a whole number from 1, or auto; got {a.processes!r}")
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        p.error(f"--only: unknown target(s) {', '.join(unknown)}; "
                f"choose from {', '.join(TARGETS)}")
    a.targets = [t for t in TARGETS if t in names] if names else list(TARGETS)
    return a


# ---------------------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    url: str
    front: Proc                  # the process the load generator talks to
    procs: list[Proc]            # the target's own processes (CPU and RSS counted)
    headers: dict[str, str] | None = None
    scripts: dict[str, Path] = field(default_factory=dict)  # wrk: plain, stream


class Pauser:
    """SIGSTOP every proxy but the measured target's, SIGCONT them after; resume_all()
    undoes every pause (the caller's finally, before stopping)."""

    def __init__(self, proxies: list[Proc]):
        self.proxies = proxies
        self.paused: list[Proc] = []

    @contextlib.contextmanager
    def only(self, running: list[Proc]) -> Iterator[None]:
        keep = {id(p) for p in running}
        try:
            for p in self.proxies:
                if id(p) not in keep:
                    self.paused.append(p)  # first: a Ctrl-C right after still resumes it
                    p.signal_group(signal.SIGSTOP)
            yield
        finally:
            self.resume_all()

    def resume_all(self) -> None:
        while self.paused:
            self.paused.pop().signal_group(signal.SIGCONT)


def litellm_version() -> str | None:
    """LiteLLM's version if `import litellm` works, else None. Asked in a child process:
    importing it here would load a large package into the process that measures."""
    code = "import importlib.metadata as m, litellm; print(m.version('litellm'))"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, check=False,
                             env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[-1] if out.returncode == 0 and lines else None


def start_litellm(tmp: Path, port: int, mock_port: int,
                  procs: list[Proc]) -> tuple[Proc, dict[str, str]]:
    """The LiteLLM proxy with one model, eldric-mock, as an OpenAI-compatible backend.
    It refuses to start without a master key, so it gets a random one for this run (every
    request then carries it, as every request to the eldric edge carries its key). Returns
    the process and the header to send."""
    exe = Path(sys.executable).with_name("litellm")
    cli = str(exe) if exe.exists() else shutil.which("litellm")
    if not cli:
        raise RuntimeError("the litellm command is not installed "
                           "(pip install 'litellm[proxy]')")
    key = "sk-" + secrets.token_hex(16)
    cfg = tmp / "litellm.yaml"
    cfg.write_text(f"""model_list:
  - model_name: eldric-mock
    litellm_params:
      model: openai/eldric-mock
      api_base: http://127.0.0.1:{mock_port}/v1
      api_key: sk-none
general_settings:
  master_key: {key}
litellm_settings:
  telemetry: false
""")
    cfg.chmod(0o600)
    # the model cost map from its package, not fetched over the network at start-up
    proc = Proc("litellm", [cli, "--config", str(cfg), "--host", "127.0.0.1", "--port",
                            str(port), "--num_workers", "1"], tmp / "litellm.log",
                env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    procs.append(proc)
    auth = {"Authorization": f"Bearer {key}"}
    wait_healthy(proc, f"http://127.0.0.1:{port}/health/liveliness", limit_s=120)
    wait_serving(proc, f"http://127.0.0.1:{port}{PATH}", BODY, headers=auth, limit_s=60)
    return proc, auth


def start_relay(tmp: Path, port: int, mock_port: int, procs: list[Proc]) -> Proc:
    proc = Proc("relay", [sys.executable, str(BENCH / "relay.py"), "--port", str(port),
                          "--upstream", f"http://127.0.0.1:{mock_port}"], tmp / "relay.log")
    procs.append(proc)
    wait_healthy(proc, f"http://127.0.0.1:{port}/health")
    return proc


def auth_scripts(tmp: Path, tag: str, headers: dict[str, str]) -> dict[str, Path]:
    """wrk scripts, plain and streamed, that send `headers` (a target's key)."""
    return {k: wrk_script(tmp / f"{tag}-{k}.lua", {**BODY, "stream": k == "stream"}, headers)
            for k in ("plain", "stream")}


def start_targets(a: argparse.Namespace, tmp: Path, procs: list[Proc],
                  notes: list[str]) -> tuple[Proc, dict[str, Target], str | None]:
    """Every process, once: the mock, then each selected target's. Returns the mock, the
    targets (a target that cannot start is skipped with a note) and LiteLLM's version."""
    plain = wrk_script(tmp / "post.lua", BODY)
    stream = wrk_script(tmp / "stream.lua", {**BODY, "stream": True})
    scripts = {"plain": plain, "stream": stream}
    base = "http://127.0.0.1:{}" + PATH
    t: dict[str, Target] = {}
    if any(n in a.targets for n in ELDRIC):
        extra = None if a.processes == "1" else ["--processes", a.processes]
        ch = start_chain(tmp, procs, TOKENS, 0, notes, extra_args=extra)
        s, u = ch["servers"], ch["urls"]
        mock = s["mock"]
        t["worker"] = Target("worker", u["worker"], s["worker"], [s["worker"]],
                             scripts=scripts)
        t["router"] = Target("router", u["router"], s["router"], [s["router"], s["worker"]],
                             scripts=scripts)
        t["chain"] = Target("chain", u["chain"], s["edge"],
                            [s["edge"], s["router"], s["worker"]], headers=AUTH,
                            scripts=auth_scripts(tmp, "chain", AUTH))
    else:
        mock = start_mock(tmp, free_port(), TOKENS, 0, procs)
    mock_port = int(mock.argv[mock.argv.index("--port") + 1])
    t["direct"] = Target("direct", base.format(mock_port), mock, [], scripts=scripts)
    if "nginx" in a.targets:
        if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
            port = free_port()
            t["nginx"] = Target("nginx", base.format(port),
                                nx := start_nginx(tmp, port, mock_port, procs), [nx],
                                scripts=scripts)
        else:
            notes.append("nginx: not installed (apt-get install -y nginx); skipped")
    if "relay" in a.targets:
        port = free_port()
        rl = start_relay(tmp, port, mock_port, procs)
        t["relay"] = Target("relay", base.format(port), rl, [rl], scripts=scripts)
    version = litellm_version()
    if "litellm" in a.targets:
        if version is None:
            notes.append("LiteLLM: not installed (import litellm failed); skipped")
        else:
            port = free_port()
            try:
                ll, ll_auth = start_litellm(tmp, port, mock_port, procs)
                t["litellm"] = Target("litellm", base.format(port), ll, [ll], headers=ll_auth,
                                      scripts=auth_scripts(tmp, "litellm", ll_auth))
            except (RuntimeError, OSError) as exc:
                notes.append(f"LiteLLM {version}: could not start ({exc}); skipped")
                if procs and procs[-1].name == "litellm":
                    procs[-1].stop()
    log(f"LiteLLM: {version or 'not installed'}")
    return mock, {n: t[n] for n in a.targets if n in t}, version


def pin(mock: Proc, targets: dict[str, Target], multi: bool,
        notes: list[str]) -> tuple[set[int] | None, dict[str, list[int]]]:
    """The mock (and, via the returned set, the load generators) on the first core, each
    proxy on the last; with --processes > 1 the eldric processes on all but the first."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        notes.append("one CPU only: nothing pinned; figures mix client and proxy")
        return None, {}
    client, last = {cpus[0]}, {cpus[-1]}
    rest = set(cpus[1:])
    set_affinity(mock, client)
    placed: dict[str, list[int]] = {"mock + load generators": sorted(client)}
    for name, tg in targets.items():
        where = rest if multi and name in ELDRIC else last
        for p in tg.procs:
            set_affinity(p, where)
        if tg.procs:
            placed[name] = sorted(where)
    os.sched_setaffinity(0, client)  # this script too (idle while measuring), and its children
    if multi:
        notes.append(f"--processes > 1: the eldric processes run on cpus {sorted(rest)} "
                     f"(every core but the load generator's), the other proxies on "
                     f"{sorted(last)}")
    return client, placed


# ------------------------------------------------------------------------ measuring


def settle(procs: list[Proc], notes: list[str], limit_s: float = 60.0) -> None:
    """Wait until every process is idle (< 10 % of a core over 0.5 s). A server that has
    just started may still be busy with start-up work (LiteLLM for many seconds after it
    answers); paused before it finished, it would do that work in its own window."""
    deadline = time.monotonic() + limit_s
    for p in procs:
        while True:
            before = p.cpu_seconds()
            time.sleep(0.5)
            if p.cpu_seconds() - before < 0.05:
                break
            if time.monotonic() > deadline:
                notes.append(f"{p.name} still busy {limit_s:g} s after start (more than 10% "
                             "of a core while idle): its figures include that")
                break


def cpu_busy(before: list, after: list, cpu: int) -> tuple[float, float]:
    """How busy `cpu` was between two psutil.cpu_times(percpu=True), in % of the time: all
    of it, and the part in interrupts (irq + softirq: loopback TCP is largely processed
    there, on behalf of whichever process sent or received)."""
    b, e = before[cpu], after[cpu]
    total = sum(e) - sum(b)
    if total <= 0:
        return 0.0, 0.0
    idle = (e.idle - b.idle) + (getattr(e, "iowait", 0) - getattr(b, "iowait", 0))
    irq = sum(getattr(e, f, 0) - getattr(b, f, 0) for f in ("irq", "softirq"))
    return round(100 * (total - idle) / total, 1), round(100 * irq / total, 1)


def window(fn, tg: Target, mock: Proc,  # type: ignore[no-untyped-def]
           gen_cpus: set[int] | None, **kw) -> dict:
    """One measurement with the CPU of every process of the target (summed), the mock's,
    the load generator's share of a core and how busy its core was."""
    servers = {p.name: p for p in tg.procs} | {"mock": mock}
    before = psutil.cpu_times(percpu=True)
    res = measured(fn, servers, **kw)
    after = psutil.cpu_times(percpu=True)
    busy, irq = cpu_busy(before, after, min(gen_cpus)) if gen_cpus else (None, None)
    sc = res["server_cpu"]
    own = [sc[p.name] for p in tg.procs]
    us = [x["us_per_req"] for x in own]
    gen = res["cpu_pct"] if "cpu_pct" in res else \
        round(100 * res["client_cpu_s"] / res["window_s"], 1) if res.get("window_s") else None
    out = {"rps": res["rps"], "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
           "us_per_req": round(sum(us), 1) if own and None not in us else None,
           "proxy_cpu_pct": round(sum(x["cpu_pct"] for x in own), 1) if own else None,
           "mock_us_per_req": sc["mock"]["us_per_req"], "mock_cpu_pct": sc["mock"]["cpu_pct"],
           "generator_cpu_pct": gen,
           "client_core_busy_pct": busy, "client_core_irq_pct": irq,
           "failures": res["failures"] + res.get("warmup_failures", 0),
           "completed": res["completed"], "concurrency": res["concurrency"],
           "by_process": {p.name: sc[p.name] for p in tg.procs}, "raw": res}
    return out


def measure_target(a: argparse.Namespace, tg: Target, mock: Proc, client: set[int] | None,
                   wrk: str | None) -> dict:
    lg = dict(duration=a.duration, warmup=a.warmup, max_requests=a.max_requests,
              client="raw", cpus=client, headers=tg.headers)
    r: dict = {}
    for kind in ("plain", "stream"):
        log(f"{tg.name}: {WORKLOADS[kind]} ({'wrk' if wrk else 'python loadgen'})")
        if wrk:
            r[kind] = window(run_wrk, tg, mock, client, wrk=wrk, script=tg.scripts[kind],
                             url=tg.url, concurrency=64, duration=a.duration,
                             warmup=a.warmup, cpus=client)
        else:
            r[kind] = window(run_loadgen, tg, mock, client, url=tg.url, concurrency=64,
                             stream=kind == "stream", **lg)
    log(f"{tg.name}: {WORKLOADS['c1']} (python loadgen)")
    r["c1"] = window(run_loadgen, tg, mock, client, url=tg.url, concurrency=1, stream=False,
                     **lg)
    return r


# ----------------------------------------------------------------------------- main


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: resume and stop


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C raises KeyboardInterrupt even where the shell started us with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(a)
    except KeyboardInterrupt:
        log("interrupted: every process resumed and stopped")
        return 130


def run(a: argparse.Namespace) -> int:
    t_run = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="eldric-side-"))
    os.chmod(tmp, 0o755)  # nginx's worker runs as nobody
    procs: list[Proc] = []
    notes: list[str] = []
    wrk = shutil.which("wrk")
    if not wrk:
        notes.append("wrk not installed (apt-get install -y wrk): c=64 with the python "
                     "load generator, which may itself be the bottleneck")
    reps: list[dict] = []
    pauser = Pauser([])
    rss: dict[str, float] = {}
    try:
        mock, targets, version = start_targets(a, tmp, procs, notes)
        checks = {n: sanity(tg.url, tg.headers) for n, tg in targets.items()}
        for n, c in checks.items():
            if not (c["plain"]["ok"] and c["stream"]["ok"]):
                notes.append(f"sanity check failed for {n}: {c}")
                log(notes[-1])
        client, placed = pin(mock, targets, a.processes != "1", notes)
        # the mock and the farm's Redis (an edge of several processes) serve every run
        pauser.proxies = [p for p in procs if p is not mock and p.name != "redis" and p.alive()]
        settle(pauser.proxies, notes)
        for rep in range(1, a.reps + 1):
            reps.append({})
            for name, tg in targets.items():
                log(f"rep {rep}/{a.reps}: {LABELS[name]}")
                with pauser.only(tg.procs):
                    # resumed processes answer again before anything is counted
                    wait_serving(tg.front, tg.url, BODY, headers=tg.headers)
                    reps[-1][name] = measure_target(a, tg, mock, client, wrk)
                for p in tg.procs + [mock]:
                    if not p.alive():
                        raise RuntimeError(f"{p.name} died while {name} was measured:\n"
                                           f"{p.stderr_tail(8)}")
        pauser.resume_all()
        rss = {n: round(sum(p.rss_bytes() for p in tg.procs) / 2**20, 1)
               for n, tg in targets.items() if tg.procs}
        rss_mock = round(mock.rss_bytes() / 2**20, 1)
    finally:
        pauser.resume_all()  # a stopped process would not see SIGTERM
        for proc in reversed(procs):
            try:
                proc.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {proc.name}: {exc!r}")
        if not a.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    leftovers = [p.name for p in procs if p.alive()]
    if leftovers:
        notes.append(f"processes still alive after stop: {leftovers}")

    names = list(targets)
    med = medians(reps, names)
    rat = ratios(med, rss)
    gs = goals(med, rat)
    notes += bound_notes(med)
    if "nginx" not in med:
        notes.append("nginx not measured: no ratio table, the targets cannot be judged")
    print()
    print(f"eldric side by side: {a.reps} interleaved rep(s), {a.duration:g} s per "
          f"measurement after {a.warmup:g} s warm-up, medians; mock {TOKENS} tokens, no "
          f"delay; c=64 with {'wrk -t1' if wrk else 'the python load generator'}; "
          f"{os.cpu_count()} cores: " + ", ".join(f"{k} on cpu {v}" for k, v in placed.items())
          + "; the proxies not measured are paused (SIGSTOP)")
    print(f"LiteLLM: {version or 'not installed'}; eldric --processes {a.processes} "
          "(router, edge); chain: --api-key required, rate limits on at 1e8 rpm")
    print("CPU per request: user+system CPU of the target's own processes during the "
          "window (warm-up included) / requests sent; the chain counts edge+router+worker")
    print()
    print(workload_tables(med))
    print()
    if rat:
        print(ratio_table(med, rat, rss))
        print()
    print(goals_text(gs))
    print("RSS after the run (MB, target's processes summed): "
          + ", ".join(f"{LABELS[t]} {v}" for t, v in rss.items()) + f"; mock {rss_mock}")
    if notes:
        print("\nnotes:")
        for n in notes:
            print("  - " + n.replace("\n", "\n    "))
    elapsed = time.perf_counter() - t_run
    print(f"\ntotal run time {elapsed:.1f} s" + (f"; figures in {a.json}" if a.json else ""))
    if a.json:
        doc = {"meta": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                        "host": platform.node(), "cpus": os.cpu_count(),
                        "python": platform.python_version(), "reps": a.reps,
                        "duration_s": a.duration, "warmup_s": a.warmup,
                        "processes": a.processes, "mock_tokens": TOKENS,
                        "wrk": bool(wrk), "litellm": version, "placement": placed,
                        "sanity": checks, "elapsed_s": round(elapsed, 1)},
               "medians": med, "vs_nginx": rat, "goals": gs, "rss_mb": rss,
               "rss_mock_mb": rss_mock, "reps": reps, "notes": notes}
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
