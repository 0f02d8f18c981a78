"""The full eldric chain for bench/streams.py and bench/soak.py: mock <- worker <- router <-
edge (HTTP, API key required, rate limits on but far too high to trip), each its own
process (and process group) on 127.0.0.1, started and stopped with bench/procs.py."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import BODY, PATH  # noqa: E402
from procs import (Proc, free_port, log, start_edge, start_router,  # noqa: E402
                   start_worker, wait_healthy)

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


def start_chain(tmp: Path, procs: list[Proc], tokens: int, token_delay_ms: float,
                notes: list[str]) -> dict:
    """Start mock, worker, router, edge; returns {"servers": {...}, "urls": {...}}."""
    ports = {n: free_port() for n in ("mock", "worker", "router", "edge")}
    log("starting " + ", ".join(f"{n} :{p}" for n, p in ports.items()) + f" (tmp {tmp})")
    mock = Proc("mock", [sys.executable, "-m", "eldric.mock", "--port", str(ports["mock"]),
                         "--tokens", str(tokens), "--token-delay", str(token_delay_ms)],
                tmp / "mock.log")
    procs.append(mock)
    wait_healthy(mock, f"http://127.0.0.1:{ports['mock']}/health")
    worker, fmt = start_worker(tmp, ports["worker"], ports["mock"], "json", procs, notes)
    # the readiness request is non-streaming: with a slow mock it takes tokens x delay
    rt = 2.0 + tokens * token_delay_ms / 1000 * 2
    router = start_router(tmp, ports["router"], ports["worker"], fmt, procs, PATH, BODY,
                          request_timeout=rt)
    edge, edge_base = start_edge("edge", tmp, ports["edge"], ports["router"], fmt, procs,
                                 PATH, BODY, API_KEY, request_timeout=rt)
    return {"servers": {"mock": mock, "worker": worker, "router": router, "edge": edge},
            "urls": {"direct": f"http://127.0.0.1:{ports['mock']}{PATH}",
                     "chain": f"{edge_base}{PATH}"},
            "log_format": fmt}


def rss_mb(proc: Proc) -> float | None:
    try:
        return proc.ps.memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - process gone
        return None


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))]
