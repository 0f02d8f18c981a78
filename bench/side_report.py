"""bench/side.py's report: medians over the repetitions, what bound each window, the
tables, the ratios to nginx and the issue's targets."""

from __future__ import annotations

import statistics

from report import fmt, grid

TARGETS = ("direct", "nginx", "relay", "litellm", "worker", "router", "chain")
LABELS = {"direct": "mock direct", "nginx": "nginx", "relay": "aiohttp relay",
          "litellm": "LiteLLM", "worker": "eldric worker", "router": "router -> worker",
          "chain": "edge -> router -> worker"}
HOPS = {"nginx": 1, "relay": 1, "litellm": 1, "worker": 1, "router": 2, "chain": 3}
ELDRIC = ("worker", "router", "chain")
WORKLOADS = {"plain": "non-streaming, c=64", "stream": "streamed (20 tokens), c=64",
             "c1": "latency, c=1"}
TOKENS = 20
GEN_BOUND_PCT = 90.0   # the load generator at this share of a core sets the pace
CORE_BUSY_PCT = 95.0   # the client core (mock + load generator) saturated
OURS_ON_CORE_PCT = 75.0  # ... and the mock and load generator used this much of it
FEW_PER_CONNECTION = 10  # fewer replies per connection in a window: in-flight ones skew it
# The targets: CPU per request against one nginx hop, added p50 per hop at c=1.
GOALS = {"worker_plain": 1.3, "worker_stream": 1.5, "chain_plain": 4.5, "p50_per_hop_ms": 0.15}


def median(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def medians(reps: list[dict], targets: list[str]) -> dict:
    """Per target and workload, the median over the repetitions; added p50 is taken per
    repetition (target minus direct of the same repetition), then the median."""
    keys = ("rps", "p50_ms", "p99_ms", "us_per_req", "proxy_cpu_pct", "mock_us_per_req",
            "mock_cpu_pct", "generator_cpu_pct", "client_core_busy_pct",
            "client_core_irq_pct")
    out: dict = {}
    for t in targets:
        out[t] = {}
        for w in WORKLOADS:
            rows = [rep[t][w] for rep in reps if t in rep]
            m = {k: median([x[k] for x in rows]) for k in keys}
            m["failures"] = sum(x["failures"] for x in rows)
            # the fewest replies any rep completed in its window, against the concurrency
            m["completed_min"] = min((x["completed"] for x in rows), default=None)
            m["concurrency"] = rows[0]["concurrency"] if rows else None
            m["by_process_us"] = {n: median([x["by_process"][n]["us_per_req"] for x in rows])
                                  for n in rows[0]["by_process"]} if rows else {}
            out[t][w] = m
        if all("direct" in rep for rep in reps):
            out[t]["c1"]["added_p50_ms"] = median(
                [rep[t]["c1"]["p50_ms"] - rep["direct"]["c1"]["p50_ms"] for rep in reps
                 if rep[t]["c1"]["p50_ms"] is not None
                 and rep["direct"]["c1"]["p50_ms"] is not None])
    return out


def ours_on_core(m: dict) -> float:
    """The share of the client core the mock, the load generator and interrupts (loopback
    TCP) took."""
    return sum(m[k] or 0 for k in ("mock_cpu_pct", "generator_cpu_pct", "client_core_irq_pct"))


def bound(m: dict) -> str:
    """What set the pace of this window's req/s."""
    if (m["generator_cpu_pct"] or 0) >= GEN_BOUND_PCT:
        return "load generator"
    if (m["proxy_cpu_pct"] or 0) >= GEN_BOUND_PCT:
        return "proxy"
    # the client core full, and mostly with what we put there (not other processes)
    if (m["client_core_busy_pct"] or 0) >= CORE_BUSY_PCT and \
            ours_on_core(m) >= OURS_ON_CORE_PCT:
        return "client core (mock + generator)"
    if (m["client_core_busy_pct"] or 0) >= CORE_BUSY_PCT:
        return "other processes on the client core"
    return "-"


def ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 2) if num is not None and den else None


def workload_tables(med: dict) -> str:
    out = []
    for w in ("plain", "stream"):
        unit = "us/reply" if w == "stream" else "us/req"
        rows = [[LABELS[t], fmt(m[w]["rps"], 0), fmt(m[w]["us_per_req"], 1),
                 " ".join(f"{n} {fmt(v, 0)}" for n, v in m[w]["by_process_us"].items())
                 if len(m[w]["by_process_us"]) > 1 else "",
                 fmt(m[w]["proxy_cpu_pct"], 0), fmt(m[w]["mock_us_per_req"], 1),
                 fmt(m[w]["mock_cpu_pct"], 0),
                 fmt(m[w]["generator_cpu_pct"], 0), fmt(m[w]["client_core_busy_pct"], 0),
                 str(m[w]["failures"]), bound(m[w])]
                for t, m in med.items()]
        out += [f"== {WORKLOADS[w]}: medians ==",
                grid(["target", "req/s", f"CPU {unit}", "by process", "proxy %core",
                      f"mock {unit}", "mock %core", "generator %core", "client core %", "fail",
                      "req/s bound by"], rows), ""]
    rows = [[LABELS[t], fmt(m["c1"]["p50_ms"], 3), fmt(m["c1"]["p99_ms"], 3),
             fmt(m["c1"].get("added_p50_ms"), 3), fmt(m["c1"]["us_per_req"], 1),
             fmt(m["c1"]["generator_cpu_pct"], 0), str(m["c1"]["failures"])]
            for t, m in med.items()]
    out += [f"== {WORKLOADS['c1']} (python loadgen, raw client): medians ==",
            grid(["target", "p50 ms", "p99 ms", "added p50 ms", "CPU us/req",
                  "generator %core", "fail"], rows)]
    return "\n".join(out)


def ratios(med: dict, rss: dict[str, float]) -> dict:
    n = med.get("nginx")
    if not n:
        return {}
    out = {}
    for t, m in med.items():
        out[t] = {
            "cpu_plain": ratio(m["plain"]["us_per_req"], n["plain"]["us_per_req"]),
            "cpu_stream": ratio(m["stream"]["us_per_req"], n["stream"]["us_per_req"]),
            "rps_plain": ratio(m["plain"]["rps"], n["plain"]["rps"]),
            "rps_stream": ratio(m["stream"]["rps"], n["stream"]["rps"]),
            "added_p50": ratio(m["c1"].get("added_p50_ms"),
                               n["c1"].get("added_p50_ms")
                               if (n["c1"].get("added_p50_ms") or 0) > 0.005 else None),
            "rss": ratio(rss.get(t), rss.get("nginx"))}
    return out


def ratio_table(med: dict, rat: dict, rss: dict[str, float]) -> str:
    rows = [[LABELS[t], fmt(r["cpu_plain"]), fmt(r["cpu_stream"]), fmt(r["rps_plain"]),
             fmt(r["rps_stream"]), fmt(med[t]["c1"].get("added_p50_ms"), 3),
             fmt(r["added_p50"]), fmt(rss.get(t), 1), fmt(r["rss"])]
            for t, r in rat.items() if t != "direct"]
    return ("== against nginx (target / nginx) ==\n" + grid(
        ["target", "CPU/req", "CPU/stream", "req/s", "req/s stream", "added p50 ms",
         "added p50 ÷ nginx's", "RSS MB", "RSS"], rows))


def goals(med: dict, rat: dict) -> list[dict]:
    """The issue's targets, each met, not met or not measured."""
    out = []

    def add(what: str, value: float | None, limit: float, unit: str) -> None:
        out.append({"goal": what, "value": value, "limit": limit, "unit": unit,
                    "met": None if value is None else value <= limit})

    add("worker hop CPU/req vs nginx, non-streaming", rat.get("worker", {}).get("cpu_plain"),
        GOALS["worker_plain"], "x")
    add("worker hop CPU/reply vs nginx, streamed", rat.get("worker", {}).get("cpu_stream"),
        GOALS["worker_stream"], "x")
    add("3-hop chain CPU/req vs one nginx hop", rat.get("chain", {}).get("cpu_plain"),
        GOALS["chain_plain"], "x")
    for t in ELDRIC:
        added = med.get(t, {}).get("c1", {}).get("added_p50_ms")
        add(f"{LABELS[t]} added p50 at c=1 ({HOPS[t]} hop{'s' * (HOPS[t] > 1)})", added,
            round(GOALS["p50_per_hop_ms"] * HOPS[t], 3), "ms")
    return out


def goals_text(gs: list[dict]) -> str:
    lines = ["== the issue's targets =="]
    for g in gs:
        state = "not measured" if g["met"] is None else "met" if g["met"] else "NOT met"
        val = "-" if g["value"] is None else f"{g['value']:.3f}{g['unit']}"
        lines.append(f"  {g['goal']}: {val} (<= {g['limit']:g}{g['unit']}): {state}")
    return "\n".join(lines)


def bound_notes(med: dict) -> list[str]:
    """Which windows' req/s say more about the load generator or its core than the proxy."""
    gen, core, other = [], [], []
    for t, m in med.items():
        for w in ("plain", "stream"):
            x, what = m[w], f"{LABELS[t]} ({'streamed' if w == 'stream' else 'non-streaming'})"
            if (x["generator_cpu_pct"] or 0) >= GEN_BOUND_PCT:
                gen.append(f"{what} {x['generator_cpu_pct']:.0f}%")
            elif bound(x).startswith("client core"):
                core.append(what)
            elif bound(x).startswith("other"):
                other.append(what)
    few = [f"{LABELS[t]} ({WORKLOADS[w]}: {m[w]['completed_min']})"
           for t, m in med.items() for w in ("plain", "stream")
           if m[w]["completed_min"] is not None
           and m[w]["completed_min"] < FEW_PER_CONNECTION * (m[w]["concurrency"] or 1)]
    out = []
    if few:
        out.append(f"fewer than {FEW_PER_CONNECTION} replies per connection completed in the "
                   "window of " + ", ".join(few) + ": its CPU per request also counts the "
                   "requests still in flight at the end (an over-estimate; req/s likewise "
                   "too low); its c=1 CPU/req is the better figure")
    if gen:
        out.append("req/s bound by the load generator, not the proxy (it used >= "
                   f"{GEN_BOUND_PCT:.0f}% of its core): " + ", ".join(gen)
                   + "; CPU per request remains the honest measure")
    if core:
        out.append(f"req/s bound by the client core (>= {CORE_BUSY_PCT:.0f}% busy, >= "
                   f"{OURS_ON_CORE_PCT:.0f}% of it the mock, the load generator and "
                   f"interrupts), not the proxy (below {GEN_BOUND_PCT:.0f}% of its core): "
                   + ", ".join(core)
                   + "; CPU per request remains the honest measure")
    if other:
        out.append(f"the client core was >= {CORE_BUSY_PCT:.0f}% busy, less than "
                   f"{OURS_ON_CORE_PCT:.0f}% of it the mock, the load generator and "
                   "interrupts (the rest: processes this run did not start), and the proxy "
                   f"used less than {GEN_BOUND_PCT:.0f}% of its core: " + ", ".join(other)
                   + ": req/s there is the machine's other load; compare CPU per request")
    return out
