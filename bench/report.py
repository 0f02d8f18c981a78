"""The hop benchmark's report: the table and the summary lines. Used by bench/run.py."""

from __future__ import annotations

TARGETS = ("direct", "worker", "nginx", "router", "edge", "edge_tls")
LABELS = {"direct": "mock direct", "worker": "eldric worker hop", "nginx": "nginx hop",
          "router": "router -> worker", "edge": "edge -> router -> worker",
          "edge_tls": "edge (HTTPS) -> router -> worker"}
EDGES = ("edge", "edge_tls")


def fmt(v: float | None, nd: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def column_widths(rows: list[list[str]]) -> list[int]:
    return [max(len(str(x[i])) for x in rows) for i in range(len(rows[0]))]


def aligned(cells: list[str], widths: list[int]) -> str:
    """The first column left-aligned (names), the others right-aligned (figures)."""
    return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                     for i, c in enumerate(cells))


def grid(head: list[str], rows: list[list[str]]) -> str:
    """A plain text table: header, rule, rows."""
    widths = column_widths([head, *rows])
    top = aligned(head, widths)
    return "\n".join([top, "-" * len(top), *(aligned(r, widths) for r in rows)])


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
    widths = column_widths([head, *rows])

    def line(cells: list[str]) -> str:
        return aligned(cells, widths)

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


def _rps_ratio(num: dict, den: dict) -> dict:
    out = {}
    for key in ("c64_wrk", "c64_py"):
        if num.get(key) and den.get(key) and den[key]["rps"]:
            out[key.removeprefix("c64_")] = round(num[key]["rps"] / den[key]["rps"], 3)
    return out


def summary(results: dict, primary64: str) -> dict:
    d, w, n, r = (results[t] for t in ("direct", "worker", "nginx", "router"))

    def p50(x: dict) -> float:
        return x["c1"]["p50_ms"]

    def ttft(x: dict) -> float:
        return x["stream_c1"]["ttft_p50_ms"]

    s: dict = {
        # each hop path minus mock direct (the router row is two hops: router + worker)
        "added_p50_ms_c1": {t: round(p50(results[t]) - p50(d), 3) for t in TARGETS[1:]},
        "added_ttft_p50_ms_c1": {t: round(ttft(results[t]) - ttft(d), 3)
                                 for t in TARGETS[1:]},
        # the router hop alone: router -> worker row minus eldric worker hop row
        "router_hop_added_p50_ms_c1": round(p50(r) - p50(w), 3),
        "router_hop_added_ttft_p50_ms_c1": round(ttft(r) - ttft(w), 3),
        "worker_over_nginx_rps_c64": _rps_ratio(w, n),
        "router_over_worker_rps_c64": _rps_ratio(r, w),
        # the edge hop alone: edge row minus router -> worker row (HTTP and HTTPS)
        "edge_hop_added_p50_ms_c1": {e: round(p50(results[e]) - p50(r), 3) for e in EDGES},
        "edge_hop_added_ttft_p50_ms_c1": {e: round(ttft(results[e]) - ttft(r), 3)
                                          for e in EDGES},
        "edge_over_router_rps_c64": {e: _rps_ratio(results[e], r) for e in EDGES},
        # the throughput target: the 3-hop chain against one nginx hop (>= 0.25)
        "chain_over_nginx_rps_c64": {e: _rps_ratio(results[e], n) for e in EDGES},
        "primary_c64": primary64,
    }
    cpu = {}
    src = primary64 if w.get(primary64) else "c64_py"
    for t, proxy in (("worker", "worker"), ("nginx", "nginx"), ("router", "router"),
                     ("edge", "edge"), ("edge_tls", "edge_tls"), ("direct", None)):
        sc = results[t][src]["server_cpu"]
        cpu[t] = {"proxy_us_per_req": sc[proxy]["us_per_req"] if proxy else None,
                  "proxy_cpu_pct": sc[proxy]["cpu_pct"] if proxy else None,
                  "mock_us_per_req": sc["mock"]["us_per_req"],
                  "mock_cpu_pct": sc["mock"]["cpu_pct"],
                  "client_cpu_s": results[t][src].get("client_cpu_s")}
        if t in ("router", *EDGES):  # the worker behind the router, in the same run
            cpu[t]["worker_us_per_req"] = sc["worker"]["us_per_req"]
            cpu[t]["worker_cpu_pct"] = sc["worker"]["cpu_pct"]
        if t in EDGES:  # and the router behind the edge
            cpu[t]["router_us_per_req"] = sc["router"]["us_per_req"]
            cpu[t]["router_cpu_pct"] = sc["router"]["cpu_pct"]
    s["cpu_c64"] = {"source": src, **cpu}
    return s


def summary_text(s: dict, results: dict) -> str:
    a, t = s["added_p50_ms_c1"], s["added_ttft_p50_ms_c1"]
    ra, rt = s["router_hop_added_p50_ms_c1"], s["router_hop_added_ttft_p50_ms_c1"]
    d, w, r = results["direct"], results["worker"], results["router"]
    ea, et = s["edge_hop_added_p50_ms_c1"], s["edge_hop_added_ttft_p50_ms_c1"]
    lines = [
        f"added p50 latency at c=1 vs direct ({fmt(d['c1']['p50_ms'], 3)} ms): "
        f"worker {a['worker']:+.3f} ms, nginx {a['nginx']:+.3f} ms, "
        f"router -> worker {a['router']:+.3f} ms, edge -> router -> worker "
        f"{a['edge']:+.3f} ms, same with HTTPS {a['edge_tls']:+.3f} ms"
        + (f"  (worker hop = {a['worker'] / a['nginx']:.1f}x an nginx hop)"
           if a["nginx"] > 0 else ""),
        f"added TTFT p50 at c=1 vs direct ({fmt(d['stream_c1']['ttft_p50_ms'], 3)} ms): "
        f"worker {t['worker']:+.3f} ms, nginx {t['nginx']:+.3f} ms, "
        f"router -> worker {t['router']:+.3f} ms, edge {t['edge']:+.3f} ms, "
        f"edge (HTTPS) {t['edge_tls']:+.3f} ms",
        f"added p50 latency at c=1 of the router hop vs the worker hop "
        f"({fmt(w['c1']['p50_ms'], 3)} ms): {ra:+.3f} ms"
        + (f"  (router hop = {ra / a['nginx']:.1f}x an nginx hop)" if a["nginx"] > 0 else "")
        + f"; TTFT p50 {rt:+.3f} ms (vs {fmt(w['stream_c1']['ttft_p50_ms'], 3)} ms)",
        f"added p50 latency at c=1 of the edge hop vs the router -> worker row "
        f"({fmt(r['c1']['p50_ms'], 3)} ms): HTTP {ea['edge']:+.3f} ms, "
        f"HTTPS {ea['edge_tls']:+.3f} ms"
        + (f"  (edge hop = {ea['edge'] / a['nginx']:.1f}x, with TLS "
           f"{ea['edge_tls'] / a['nginx']:.1f}x an nginx hop)" if a["nginx"] > 0 else "")
        + f"; TTFT p50 HTTP {et['edge']:+.3f} ms, HTTPS {et['edge_tls']:+.3f} ms "
        f"(vs {fmt(r['stream_c1']['ttft_p50_ms'], 3)} ms)",
        "worker/nginx rps ratio at c=64: " + ", ".join(
            f"{k} {v:.3f}" for k, v in s["worker_over_nginx_rps_c64"].items())
        + "; router->worker/worker: " + ", ".join(
            f"{k} {v:.3f}" for k, v in s["router_over_worker_rps_c64"].items())
        + "; edge/router->worker: " + ", ".join(
            f"{k} {v:.3f}" for k, v in s["edge_over_router_rps_c64"]["edge"].items())
        + "; edge (HTTPS)/router->worker: " + ", ".join(
            f"{k} {v:.3f}" for k, v in s["edge_over_router_rps_c64"]["edge_tls"].items())
        + f"   (primary: {s['primary_c64'].removeprefix('c64_')})",
    ]
    ch = s["chain_over_nginx_rps_c64"]
    hops = {"worker": a["worker"], "router": ra, "edge": ea["edge"], "edge (HTTPS)": ea["edge_tls"]}
    lines.append(
        "targets: 3-hop chain / nginx one hop rps at c=64 (>= 0.25): HTTP "
        + ", ".join(f"{k} {v:.3f}" for k, v in ch["edge"].items()) + "; HTTPS "
        + ", ".join(f"{k} {v:.3f}" for k, v in ch["edge_tls"].items())
        + "; added p50 per hop at c=1 (<= 0.5 ms): "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in hops.items()))
    c = s["cpu_c64"]
    lines.append(
        f"server CPU per request at c=64 ({c['source'].removeprefix('c64_')} run): "
        f"worker {fmt(c['worker']['proxy_us_per_req'], 0)} us "
        f"({fmt(c['worker']['proxy_cpu_pct'], 0)}% of a core), "
        f"nginx {fmt(c['nginx']['proxy_us_per_req'], 0)} us "
        f"({fmt(c['nginx']['proxy_cpu_pct'], 0)}%), "
        f"mock {fmt(c['direct']['mock_us_per_req'], 0)} us "
        f"({fmt(c['direct']['mock_cpu_pct'], 0)}% when hit directly)")
    lines.append(
        f"router CPU per request at c=64 ({c['source'].removeprefix('c64_')} run, "
        f"router -> worker row): router {fmt(c['router']['proxy_us_per_req'], 0)} us "
        f"({fmt(c['router']['proxy_cpu_pct'], 0)}% of a core), worker behind it "
        f"{fmt(c['router']['worker_us_per_req'], 0)} us "
        f"({fmt(c['router']['worker_cpu_pct'], 0)}%), "
        f"mock {fmt(c['router']['mock_us_per_req'], 0)} us "
        f"({fmt(c['router']['mock_cpu_pct'], 0)}%)")
    for e, name in (("edge", "edge"), ("edge_tls", "edge (HTTPS)")):
        ce = c[e]
        lines.append(
            f"{name} CPU per request at c=64 ({c['source'].removeprefix('c64_')} run, "
            f"{LABELS[e]} row): {name} {fmt(ce['proxy_us_per_req'], 0)} us "
            f"({fmt(ce['proxy_cpu_pct'], 0)}% of a core), router behind it "
            f"{fmt(ce['router_us_per_req'], 0)} us ({fmt(ce['router_cpu_pct'], 0)}%), "
            f"worker {fmt(ce['worker_us_per_req'], 0)} us ({fmt(ce['worker_cpu_pct'], 0)}%), "
            f"mock {fmt(ce['mock_us_per_req'], 0)} us ({fmt(ce['mock_cpu_pct'], 0)}%)")
    return "\n".join(lines)
