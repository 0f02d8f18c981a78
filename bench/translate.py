"""The price of translation: a worker's CPU per request on a translated client API
(Anthropic Messages, OpenAI Responses, Ollama's /api/chat) beside Chat Completions passed
through, whole and streamed, on the same mock backend.

    python bench/translate.py [--duration 4] [--warmup 1] [--tokens 16] [--concurrency 16]

Starts the mock (`python -m eldric.mock --tokens N --token-delay 0`) and one eldric worker
in front of it as `--backend tgi` (TGI serves Chat Completions only, so every other client
API is translated by the worker), pins the worker to core 0 and the mock and wrk to the
others where there are any, and measures each path with wrk (one thread). Prints the
worker's CPU per request, and per streamed event (the mock's tokens plus its finish chunk),
and the difference from pass-through. Stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, measured, run_wrk, wrk_script  # noqa: E402
from procs import (Proc, eldric_exe, free_port, log, set_affinity,  # noqa: E402
                   wait_healthy)

MODEL = "eldric-mock"
PROMPT = "Say hello to the benchmark."
# (name, path, whole body); the streamed body is the same with the API's stream flag on.
PATHS = [
    ("chat (pass-through)", "/v1/chat/completions",
     {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}),
    ("anthropic messages", "/v1/messages",
     {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}),
    ("openai responses", "/v1/responses", {"model": MODEL, "input": PROMPT, "store": False}),
    ("ollama /api/chat", "/api/chat",
     {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": False}),
]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--tokens", type=int, default=16, help="tokens per mock reply")
    p.add_argument("--concurrency", type=int, default=16)
    return p.parse_args()


def main() -> int:
    args = _args()
    wrk = shutil.which("wrk")
    if wrk is None:
        log("wrk is not installed (apt-get install wrk)")
        return 2
    cores = sorted(os.sched_getaffinity(0))
    procs: list[Proc] = []
    results = []
    with tempfile.TemporaryDirectory(prefix="eldric-bench-translate-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            mock_port, port = free_port(), free_port()
            mock = Proc("mock", [sys.executable, "-m", "eldric.mock", "--port", str(mock_port),
                                 "--tokens", str(args.tokens), "--token-delay", "0"],
                        tmp / "mock.log")
            procs.append(mock)
            wait_healthy(mock, f"http://127.0.0.1:{mock_port}/v1/models")
            worker = Proc("worker", [
                eldric_exe(), "--role", "worker", "--backend", "tgi",
                "--backend-url", f"http://127.0.0.1:{mock_port}", "--port", str(port),
                "--bind", "127.0.0.1", "--data-dir", str(tmp / "worker"),
                "--log-level", "warning"], tmp / "worker.log")
            procs.append(worker)
            wait_healthy(worker, f"http://127.0.0.1:{port}/health")
            if len(cores) > 1:
                set_affinity(worker, {cores[0]})
                set_affinity(mock, set(cores[1:]))
            for name, path, body in PATHS:
                for stream in (False, True):
                    sent = {**body, "stream": stream}
                    script = wrk_script(tmp / "req.lua", sent)
                    url = f"http://127.0.0.1:{port}{path}"
                    res = measured(run_wrk, {"worker": worker}, wrk=wrk, script=script,
                                   url=url, concurrency=args.concurrency,
                                   duration=args.duration, warmup=args.warmup)
                    us = res["server_cpu"]["worker"]["us_per_req"]
                    results.append({"name": name, "path": path, "stream": stream,
                                    "rps": res["rps"], "failures": res["failures"],
                                    "worker_us_per_req": us})
                    log(f"{name:22} {'stream' if stream else 'whole ':6} "
                        f"{res['rps']:>8.0f} req/s  worker {us} µs/req  "
                        f"failures {res['failures']}")
        finally:
            for p in reversed(procs):
                p.stop()
    _report(results, args.tokens)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "translate.json").write_text(json.dumps(
        {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "tokens": args.tokens,
         "concurrency": args.concurrency, "results": results}, indent=2))
    return 0


def _report(results: list[dict], tokens: int) -> None:
    base = {r["stream"]: r["worker_us_per_req"] for r in results
            if r["path"] == "/v1/chat/completions"}
    events = tokens + 1  # the mock's token chunks and its finish chunk
    print(f"\nworker CPU, µs per request (streamed: also per upstream event, {events} "
          "events a reply)")
    for r in results:
        us, b = r["worker_us_per_req"], base.get(r["stream"])
        extra = "" if us is None or b is None or r["path"] == "/v1/chat/completions" \
            else f"  (+{us - b:.1f} µs translation"
        if extra and r["stream"]:
            extra += f", +{(us - b) / events:.2f} µs/event"
        extra += ")" if extra else ""
        ok = "" if not r["failures"] else f"  FAILURES {r['failures']}"
        print(f"  {r['name']:22} {'stream' if r['stream'] else 'whole':6} {us:>8} {extra}{ok}")


if __name__ == "__main__":
    raise SystemExit(main())
