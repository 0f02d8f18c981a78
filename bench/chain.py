"""The full eldric chain for bench/streams.py and bench/soak.py: mock <- worker <- router <-
edge (HTTP, API key required, rate limits on but far too high to trip), each its own
process (and process group) on 127.0.0.1, started and stopped with bench/procs.py."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import BODY, PATH  # noqa: E402
from procs import (Proc, free_port, log, start_edge, start_mock, wait_processes,  # noqa: E402
                   start_router, start_worker)

API_KEY = "sk-bench"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def raise_nofile(want: int = 65536) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE for this process; the children started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new_hard = max(hard, want) if hard != resource.RLIM_INFINITY else hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def processes(extra_args: list[str] | None) -> int:
    """The N of a --processes N (or auto) among `extra_args`; 1 without one."""
    if not extra_args or "--processes" not in extra_args:
        return 1
    given = extra_args[extra_args.index("--processes") + 1]
    return len(os.sched_getaffinity(0)) if given == "auto" else int(given)


def start_redis(tmp: Path, procs: list[Proc]) -> str:
    """A redis-server on a free loopback port, nothing saved: its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("--processes > 1 puts the edge in farm mode, which needs "
                           "redis-server (apt-get install -y redis-server)")
    port = free_port()
    procs.append(Proc("redis", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], tmp / "redis.log"))
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not listen within 10 s") from None
            time.sleep(0.05)


def start_chain(tmp: Path, procs: list[Proc], tokens: int, token_delay_ms: float,
                notes: list[str], extra_args: list[str] | None = None) -> dict:
    """Start mock, worker, router, edge; returns {"servers": {...}, "urls": {...}}.
    `extra_args`: more flags for the router and the edge (e.g. --processes N)."""
    ports = {n: free_port() for n in ("mock", "worker", "router", "edge")}
    log("starting " + ", ".join(f"{n} :{p}" for n, p in ports.items()) + f" (tmp {tmp})")
    mock = start_mock(tmp, ports["mock"], tokens, token_delay_ms, procs)
    worker, fmt = start_worker(tmp, ports["worker"], ports["mock"], "json", procs, notes)
    # the readiness request is non-streaming: with a slow mock it takes tokens x delay
    rt = 2.0 + tokens * token_delay_ms / 1000 * 2
    router = start_router(tmp, ports["router"], ports["worker"], fmt, procs, PATH, BODY,
                          request_timeout=rt, extra_args=extra_args)
    n = processes(extra_args)
    edge_args = extra_args
    if n > 1:  # an edge of several processes keeps its rate limits in the farm's Redis
        edge_args = [*(extra_args or []), "--mode", "farm",
                     "--redis-url", start_redis(tmp, procs)]
    edge, edge_base = start_edge("edge", tmp, ports["edge"], ports["router"], fmt, procs,
                                 PATH, BODY, API_KEY, request_timeout=rt,
                                 extra_args=edge_args)
    wait_processes(f"http://127.0.0.1:{ports['router']}", n)
    wait_processes(edge_base, n)
    return {"servers": {"mock": mock, "worker": worker, "router": router, "edge": edge},
            "urls": {"direct": f"http://127.0.0.1:{ports['mock']}{PATH}",
                     "worker": f"http://127.0.0.1:{ports['worker']}{PATH}",
                     "router": f"http://127.0.0.1:{ports['router']}{PATH}",
                     "chain": f"{edge_base}{PATH}"},
            "log_format": fmt}


def rss_mb(proc: Proc) -> float | None:
    return proc.rss_bytes() / 2**20 if proc.alive() else None


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))]
