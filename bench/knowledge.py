"""What knowledge routing costs a request: the classifier in-process, and the router's
CPU per request at c=64 with it on vs. off.

    python bench/knowledge.py            # in-process figures, then the c=64 runs (~1 min)
    python bench/knowledge.py --no-load  # in-process figures only

In-process: every prompt of the labelled sets (tests/data/knowledge_prompts*.jsonl) is
sent through the Narrower as the router does it (the chat body's bytes -> RouteContext ->
decode, the last user turn and system prompt, the keyword scorer, the tag lookup among
three workers, the reply headers, the /metrics count), ROUNDS times; p50/p99/max of all
those calls, and of the keyword scorer alone. The embedding scorer is off (its cost is
its model's).

At c=64: mock -> eldric worker -> eldric router (round_robin), the router started twice,
knowledge off and on (its worker tagged theme:medicine), each loaded with a medical chat
request (classified and narrowed) for DURATION s; the router's CPU us per request from its
process's CPU time (bench/measure.py). Both cores are shared with the load generator,
the mock and the worker, so read the difference, not the absolute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

ROUNDS = 200
PATH = "/v1/chat/completions"
PROMPT = "I get chest pain when I climb stairs and my blood pressure is always high."


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def in_process() -> dict:
    from aiohttp import web

    from eldric import keys
    from eldric.bus import Bus
    from eldric.roles.router.context import RouteContext
    from eldric.roles.router.knowledge import themes
    from eldric.roles.router.knowledge.config import KnowledgeConfig
    from eldric.roles.router.knowledge.narrow import Knowledge
    from eldric.roles.router.pool import WorkerPool

    class Req:  # what RouteContext reads of a request
        path = PATH
        headers: dict[str, str] = {}

    app = web.Application()
    app[keys.BUS] = Bus()
    loaded, source = themes.load(None)
    k = Knowledge(app, KnowledgeConfig(enabled=True), loaded, source)
    pool = WorkerPool(app[keys.BUS], role="router")
    ws = [pool.add(f"w{i}", f"http://127.0.0.1:{9000 + i}", tags=t)
          for i, t in enumerate([["theme:medicine"], ["theme:law"], []])]
    prompts = [json.loads(line)["prompt"] for name in ("knowledge_prompts.jsonl",
                                                       "knowledge_prompts_heldout.jsonl")
               for line in (ROOT / "tests" / "data" / name).read_text().splitlines() if line]
    bodies = [json.dumps({"model": "m", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": p}]}).encode() for p in prompts]
    narrow_ns: list[float] = []
    score_ns: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(ROUNDS):
        for body, p in zip(bodies, prompts):
            t0 = clock()
            ctx = RouteContext(Req(), body, "m")  # type: ignore[arg-type]
            await k.narrow(ws, ctx)
            t1 = clock()
            k.keywords.score(p, 3)
            t2 = clock()
            narrow_ns.append(t1 - t0)
            score_ns.append(t2 - t1)
    chars = sum(map(len, prompts)) / len(prompts)
    return {"prompts": len(prompts), "rounds": ROUNDS, "mean_chars": round(chars),
            "narrow_us": {q: round(_pct(narrow_ns, v) / 1000, 1)
                          for q, v in (("p50", .5), ("p99", .99), ("max", 1.0))},
            "keywords_us": {q: round(_pct(score_ns, v) / 1000, 1)
                            for q, v in (("p50", .5), ("p99", .99), ("max", 1.0))}}


def under_load(duration: float) -> dict:
    from measure import measured, run_loadgen
    from procs import Proc, free_port, start_worker, wait_healthy, wait_serving

    os.environ["PYTHONPATH"] = str(ROOT)  # the processes run this tree, not an installed one

    body = {"model": "eldric-mock", "messages": [{"role": "user", "content": PROMPT}]}
    out: dict = {}
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="eldric-bench-knowledge-") as tmp_s:
        tmp = Path(tmp_s)
        try:
            ports = {n: free_port() for n in ("mock", "worker", "off", "on")}
            mock = Proc("mock", [sys.executable, "-m", "eldric.mock", "--port",
                                 str(ports["mock"]), "--tokens", "16", "--token-delay", "0"],
                        tmp / "mock.log")
            procs.append(mock)
            wait_healthy(mock, f"http://127.0.0.1:{ports['mock']}/health")
            start_worker(tmp, ports["worker"], ports["mock"], "json", procs, [])
            for mode in ("off", "on"):
                cfg = tmp / f"router-{mode}.json"
                cfg.write_text(json.dumps({
                    "workers": [{"url": f"http://127.0.0.1:{ports['worker']}",
                                 "tags": ["theme:medicine"]}],
                    "strategy": "round_robin", "knowledge": {"enabled": mode == "on"}}))
                router = Proc(f"router-{mode}", [
                    sys.executable, "-m", "eldric", "--role", "router", "--config", str(cfg),
                    "--port", str(ports[mode]), "--bind", "127.0.0.1",
                    "--data-dir", str(tmp / f"data-{mode}"), "--log-format", "json",
                    "--log-level", "info"], tmp / f"router-{mode}.log")
                procs.append(router)
                url = f"http://127.0.0.1:{ports[mode]}"
                wait_healthy(router, url + "/health")
                wait_serving(router, url + PATH, body)
            for mode in ("off", "on", "off", "on"):  # interleaved: the machine is shared
                proc = next(p for p in procs if p.name == f"router-{mode}")
                res = measured(run_loadgen, {"router": proc},
                               url=f"http://127.0.0.1:{ports[mode]}{PATH}", concurrency=64,
                               duration=duration, warmup=1.0, max_requests=10**6,
                               stream=False, client="raw")
                out.setdefault(mode, []).append(
                    {"rps": res.get("rps"), "p50_ms": res.get("p50_ms"),
                     "router_us_per_req": res["server_cpu"]["router"]["us_per_req"]})
        finally:
            for p in reversed(procs):
                p.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-load", action="store_true", help="the in-process figures only")
    ap.add_argument("--duration", type=float, default=5.0)
    a = ap.parse_args()
    res = {"in_process": asyncio.run(in_process())}
    print(json.dumps(res["in_process"]), flush=True)
    if not a.no_load:
        res["c64"] = under_load(a.duration)
        print(json.dumps(res["c64"]), flush=True)


if __name__ == "__main__":
    main()
