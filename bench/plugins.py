"""What edge plugins cost: the edge's added latency with 0, 1 and 3 filters (p50, c=1 and
c=64, non-streamed), the per-event cost of a streamed outlet filter, and 0 filters A/B
against the edge without plugin support (a checkout of `main`).

    python bench/plugins.py [--duration 3] [--warmup 1] [--tokens 16] [--baseline DIR]

Starts the mock (`python -m eldric.mock --tokens N --token-delay 0`) and, one at a time,
an eldric edge (plain HTTP, no key, no rate limit) in front of it: the baseline tree's
edge, then this tree's with a plugins directory holding three pass-through filters
(inlet, outlet and stream hooks that return what they get, so what is measured is the
plugin machinery, not a filter's work) of which 0, 1 or 3 are enabled. Each is measured
with bench/loadgen.py. The baseline defaults to a temporary `git worktree` of `main`,
removed at the end. Stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, run_loadgen  # noqa: E402
from procs import Proc, free_port, log, wait_healthy, wait_serving  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "bench-admin"
BODY = {"model": "eldric-mock", "messages": [{"role": "user", "content": "Say hello."}]}
PASS = textwrap.dedent("""
    from eldric import plugin

    @plugin.inlet
    def inlet(body, user):
        return body

    @plugin.outlet
    def outlet(body, user):
        return body

    @plugin.stream
    def stream(event, user):
        return event

    plugin.run()
    """)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--tokens", type=int, default=16, help="tokens per mock reply")
    p.add_argument("--baseline", type=Path, help="an eldric tree without plugins "
                   "(default: a temporary worktree of main)")
    p.add_argument("--output", type=Path, default=RESULTS / "plugins.json")
    return p.parse_args()


def _plugins(tmp: Path, enabled: int) -> Path:
    d = tmp / f"plugins-{enabled}"
    for i in range(3):
        pid = f"pass{i}"
        (d / pid).mkdir(parents=True)
        (d / pid / "manifest.json").write_text(json.dumps(
            {"id": pid, "name": pid, "type": "filter", "priority": i, "timeout_ms": 5000}))
        (d / pid / "main.py").write_text(PASS)
    (d / "enabled.json").write_text(json.dumps([f"pass{i}" for i in range(enabled)]))
    return d


def _edge(tree: Path, tmp: Path, name: str, mock_port: int,
          plugins: Path | None) -> tuple[Proc, str]:
    port = free_port()
    argv = [sys.executable, "-m", "eldric", "--role", "edge", "--no-tls", "--http-port",
            str(port), "--bind", "127.0.0.1", "--routers", f"http://127.0.0.1:{mock_port}",
            "--no-require-api-key", "--per-ip-rpm", "0", "--per-key-rpm", "0",
            "--global-rpm", "0", "--data-dir", str(tmp / f"{name}-data"),
            "--log-level", "warning"]
    if plugins is not None:
        argv += ["--plugins-dir", str(plugins), "--admin-key", ADMIN]
    # `python -m eldric` from the tree: its own eldric, whatever is installed
    edge = Proc(name, ["env", "-C", str(tree), *argv], tmp / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    wait_healthy(edge, f"{base}/health")
    wait_serving(edge, f"{base}/v1/chat/completions", BODY, request_timeout=10)
    return edge, base


def _plugin_calls(base: str) -> dict:
    req = urllib.request.Request(base + "/api/v1/plugins",
                                 headers={"Authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        listed = json.load(r)["plugins"]
    return {p["id"]: {k: p.get(k) for k in ("calls", "failures", "p50_ms")}
            for p in listed if p.get("calls")}


def _measure(base: str, args: argparse.Namespace, concurrency: int, stream: bool) -> dict:
    return run_loadgen(f"{base}/v1/chat/completions", concurrency=concurrency,
                       duration=args.duration, warmup=args.warmup, max_requests=2_000_000,
                       stream=stream, client="raw")


def main() -> int:
    args = _args()
    results: dict[str, dict] = {}
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="eldric-bench-plugins-") as tmpdir:
        tmp = Path(tmpdir)
        baseline = args.baseline
        made_worktree = baseline is None
        if baseline is None:
            baseline = tmp / "main"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach",
                            str(baseline), "main"], check=True, capture_output=True)
        try:
            mock_port = free_port()
            mock = Proc("mock", [sys.executable, "-m", "eldric.mock", "--port", str(mock_port),
                                 "--tokens", str(args.tokens), "--token-delay", "0"],
                        tmp / "mock.log")
            procs.append(mock)
            wait_healthy(mock, f"http://127.0.0.1:{mock_port}/v1/models")
            setups = [("main (no plugins)", baseline, None), *(
                (f"{n} filters", ROOT, _plugins(tmp, n)) for n in (0, 1, 3))]
            for name, tree, plugins in setups:
                edge, base = _edge(tree, tmp, name.split()[0], mock_port, plugins)
                procs.append(edge)
                row = results[name] = {}
                for c in (1, 64):
                    r = _measure(base, args, c, False)
                    row[f"c{c}"] = {k: r[k] for k in ("p50_ms", "p99_ms", "rps", "failures")}
                    log(f"{name:18} c={c:<3} p50 {r['p50_ms']} ms  rps {r['rps']}  "
                        f"failures {r['failures']}")
                if name in ("0 filters", "1 filters"):
                    r = _measure(base, args, 1, True)
                    row["stream_c1"] = {k: r[k] for k in ("p50_ms", "ttft_p50_ms", "rps",
                                                          "failures")}
                    log(f"{name:18} streamed c=1 p50 {r['p50_ms']} ms  failures {r['failures']}")
                if plugins is not None:  # the children's own view: a call's p50 round trip
                    row["plugin_calls"] = _plugin_calls(base)
                edge.stop()
        finally:
            for p in reversed(procs):
                p.stop()
            if made_worktree:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(baseline)], check=False, capture_output=True)
    events = args.tokens + 3  # the role chunk, a chunk per token, the finish chunk, [DONE]
    base0 = results["0 filters"]
    summary = {
        "added_p50_ms": {n: {c: round(results[n][c]["p50_ms"] - base0[c]["p50_ms"], 3)
                             for c in ("c1", "c64")} for n in ("1 filters", "3 filters")},
        "zero_vs_main_p50_ms": {c: round(base0[c]["p50_ms"]
                                         - results["main (no plugins)"][c]["p50_ms"], 3)
                                for c in ("c1", "c64")},
        "stream_filter_per_event_ms": round(
            (results["1 filters"]["stream_c1"]["p50_ms"] - base0["stream_c1"]["p50_ms"])
            / (events - 1), 4),  # [DONE] is not a JSON event: the filter does not see it
    }
    out = {"tokens": args.tokens, "duration_s": args.duration, "results": results,
           "summary": summary}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
