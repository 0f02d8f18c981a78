"""The router's load forecast: how well it predicts, and what a sample costs (a benchmark,
not a test).

`python bench/predict.py [--seconds 180] [--interval-ms 1000] [--keep-tmp]`
(from the repository root: the processes run `python -m eldric` of this tree)

1. Live: a real router (its own process, 127.0.0.1) in front of a real worker with the
   mock backend, driven open-loop with Poisson arrivals whose rate follows a schedule
   (steady, a ramp, a plateau, a step up, a drop). Every sample the router's own forecast
   is read from GET /api/v1/predict; at the end its forecasts one sample and one minute
   ahead are scored against what it then observed (MAPE, and how often the observed rate
   fell inside the stated band), with the naive forecast ("as now") beside them, and the
   anomalies it flagged listed against the schedule's changes.
2. Replay: the series the router recorded (?history=1), replayed offline through the same
   model (holt.replay), 1, 10 and 60 samples ahead, against the naive forecast.
3. Cost: Forecaster.sample() with 1, 20 and 200 models counted in the metrics and 8
   workers; a Series.update() alone; load_based's rank() of 4 tied workers with and
   without the forecast (the per-request cost of the tie-break).

Bounded: one run of --seconds; stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import sys
import tempfile
import time
import timeit
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procs import Proc, free_port, log, wait_healthy, wait_serving  # noqa: E402

MODEL = "eldric-mock"


def schedule(t: float, total: float) -> float:
    """Requests per second at t: steady 10, ramp to 40, plateau, a step to 80, a drop to 20."""
    f = t / total
    if f < 0.2:
        return 10.0
    if f < 0.45:
        return 10 + 30 * (f - 0.2) / 0.25
    if f < 0.65:
        return 40.0
    if f < 0.85:
        return 80.0
    return 20.0


async def drive(base: str, total: float, stop: asyncio.Event, counts: list[int]) -> None:
    """Open-loop Poisson arrivals at schedule(t): each request its own task."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    rng = random.Random(7)
    start = time.monotonic()
    pending: set[asyncio.Task] = set()
    conn = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def one() -> None:
            try:
                async with s.post(base + "/v1/chat/completions", json=body) as r:
                    await r.read()
                    counts[0 if r.status == 200 else 1] += 1
            except aiohttp.ClientError:
                counts[1] += 1

        t = 0.0
        while t < total and not stop.is_set():
            t += rng.expovariate(schedule(t, total))
            await asyncio.sleep(max(0.0, start + t - time.monotonic()))
            task = asyncio.create_task(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending, timeout=10)


async def watch(base: str, stop: asyncio.Event, interval: float,
                seen: list[dict]) -> None:
    """The router's forecast after every sample (read twice a sample, kept once each),
    with the time since the traffic started."""
    last = -1
    start = time.monotonic()
    async with aiohttp.ClientSession() as s:
        while not stop.is_set():
            async with s.get(f"{base}/api/v1/predict?model={MODEL}") as r:
                body = await r.json() if r.status == 200 else None
            if body and body["samples"] != last and body["models"]:
                last = body["samples"]
                m = body["models"][0]
                seen.append({"samples": last, "t": time.monotonic() - start,
                             "observed": m["observed_rps"],
                             "band": m["band"], "minute": m["forecast"][0],
                             "anomaly": m["anomaly"], "anomalies": m["anomalies"]})
            await asyncio.sleep(interval / 2)


def score(seen: list[dict], per_minute: int, total: float) -> dict[str, float]:
    """The router's forecasts a minute ahead, stated live, against what it observed a
    minute later and against the schedule's rate then (the truth without counting
    noise); the naive forecast ("as now") beside them; how often the observed rate was
    inside the stated band, and the band's half-width relative to the forecast."""
    by_n = {x["samples"]: x for x in seen}
    errs, truth, naive, inside, width = [], [], [], 0, []
    for n, x in by_n.items():
        later = by_n.get(n + per_minute)
        if later is None or later["observed"] <= 0 or later["t"] > total:
            continue
        actual, f = later["observed"], x["minute"]
        expected = f["expected_rps"]
        errs.append(abs(expected - actual) / actual)
        true = schedule(later["t"], total)
        truth.append(abs(expected - true) / true)
        naive.append(abs(x["observed"] - actual) / actual)
        inside += f["low_rps"] <= actual <= f["high_rps"]
        if expected > 0:
            width.append((f["high_rps"] - f["low_rps"]) / 2 / expected)
    if not errs:
        return {}
    return {"points": len(errs), "MAPE vs observed %": 100 * sum(errs) / len(errs),
            "naive MAPE vs observed %": 100 * sum(naive) / len(naive),
            "MAPE vs the schedule %": 100 * sum(truth) / len(truth),
            "observed inside the band %": 100 * inside / len(errs),
            "band half-width / forecast %": 100 * sum(width) / max(1, len(width))}


def trace(n: int, seed: int = 11) -> tuple[list[float], list[float]]:
    """A synthetic day of traffic squeezed into n samples of 10 s: a daily cycle
    (3 -> 30 requests/s), a lunchtime step up by half for an eighth of it, one burst
    sample at 5x; Poisson counts per sample. (observed, truth)"""
    rng = random.Random(seed)
    truth, observed = [], []
    for i in range(n):
        f = i / n
        rate = 3 + 27 * (0.5 - 0.5 * math.cos(2 * math.pi * f))
        if 0.55 <= f < 0.675:
            rate *= 1.5
        truth.append(rate)
        count = rng.gauss(rate * 10, math.sqrt(rate * 10))  # a Poisson count of >= 30
        observed.append(max(0.0, round(count)) / 10)
    observed[n // 3] *= 5
    return observed, truth


def best(fn, k: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per call, the least disturbed of 7 runs (the machine is shared)."""
    return min(timeit.repeat(fn, number=k, repeat=7)) / k


def costs() -> None:
    from eldric.bus.metrics import Metrics
    from eldric.bus.upstreams import UpstreamState
    from eldric.roles.router import strategies
    from eldric.roles.router.pool import Worker
    from eldric.roles.router.predict.config import PredictConfig
    from eldric.roles.router.predict.forecaster import Forecaster
    from eldric.roles.router.predict.holt import Params, Series

    workers = [Worker(id=f"w{i}", url=f"http://127.0.0.1:{9000 + i}",
                      state=UpstreamState(f"w{i}", f"http://127.0.0.1:{9000 + i}", "router"))
               for i in range(8)]
    for i, w in enumerate(workers):
        w.state.models = [f"m{j}" for j in range(200) if j % 8 == i or j < 2]
        w.state.load = {"cpu_percent": 50.0}
    for n in (1, 20, 200):
        metrics = Metrics()
        f = Forecaster(PredictConfig(), metrics, "router", lambda: 0, lambda: 0,
                       lambda: workers)
        for j in range(n):
            for route in ("/v1/chat/completions", "/v1/embeddings"):
                metrics.requests.labels("router", route, "200", f"m{j}").inc(5)
        f.sample(0.0)
        def bump() -> None:  # one more request per model between two samples
            for j in range(n):
                metrics.requests.labels("router", "/v1/chat/completions", "200", f"m{j}").inc()

        both = best(lambda: (bump(), f.sample()), 100)
        print(f"  Forecaster.sample(), {n:3d} models, 8 workers: "
              f"{(both - best(bump, 100)) * 1e6:8.1f} µs per sample")
    s = Series(Params(horizon=30), 10.0)
    print(f"  Series.update(): {best(lambda: s.update(5.0), 50_000) * 1e6:.2f} µs")
    rr = strategies.RoundRobin()
    lb = strategies.LoadBased(rr)
    tied = workers[:4]
    k = 20_000
    plain = best(lambda: lb.rank(tied), k)
    f.demand = {w.id: float(i) for i, w in enumerate(tied)}
    lb.demand = f
    broken = best(lambda: lb.rank(tied), k)
    f.demand = {w.id: 1.0 for w in tied}
    equal = best(lambda: lb.rank(tied), k)
    print(f"  load_based rank() of 4 tied workers: {plain * 1e6:.2f} µs without the "
          f"forecast, {broken * 1e6:.2f} µs when it breaks the tie, {equal * 1e6:.2f} µs "
          "when the expectations are equal")


async def live(args: argparse.Namespace, tmp: Path) -> list[float]:
    procs: list[Proc] = []
    py = [sys.executable, "-m", "eldric"]
    wport, rport = free_port(), free_port()
    try:
        procs.append(Proc("worker", [*py, "--role", "worker", "--backend", "mock",
                                     "--port", str(wport), "--bind", "127.0.0.1",
                                     "--data-dir", str(tmp / "w"), "--log-level", "warning"],
                          tmp / "worker.log"))
        wait_healthy(procs[-1], f"http://127.0.0.1:{wport}/health", 30)
        history = int(args.seconds * 1000 / args.interval_ms) + 20
        procs.append(Proc("router", [
            *py, "--role", "router", "--workers", f"http://127.0.0.1:{wport}",
            "--port", str(rport), "--bind", "127.0.0.1", "--data-dir", str(tmp / "r"),
            "--log-level", "warning", "--predict-interval", str(args.interval_ms),
            "--predict-history", str(history)], tmp / "router.log"))
        base = f"http://127.0.0.1:{rport}"
        wait_healthy(procs[-1], base + "/health", 30)
        wait_serving(procs[-1], base + "/v1/chat/completions",
                     {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, 30)
        log(f"driving {args.seconds:.0f} s of scheduled traffic")
        stop = asyncio.Event()
        seen: list[dict] = []
        counts = [0, 0]
        watcher = asyncio.create_task(watch(base, stop, args.interval_ms / 1000, seen))
        await drive(base, args.seconds, stop, counts)
        await asyncio.sleep(2 * args.interval_ms / 1000)
        stop.set()
        await watcher
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/api/v1/predict?model={MODEL}&history=1") as r:
                body = await r.json()
        print(f"\nlive: {counts[0]} requests answered, {counts[1]} failed; "
              f"{len(seen)} samples read, sampled every {args.interval_ms} ms")
        per_minute = round(60_000 / args.interval_ms)
        print("  a minute ahead, as the router stated it:")
        for k, v in score(seen, per_minute, args.seconds).items():
            print(f"    {k:34s} {v:8.1f}")
        changes = [round(args.seconds * f) for f in (0.2, 0.45, 0.65, 0.85)]
        flagged = [round(x["samples"] * args.interval_ms / 1000)
                   for a, x in zip(seen, seen[1:]) if x["anomalies"] > a["anomalies"]]
        print(f"  schedule changes at s {changes} (ramp start, ramp end, step up, drop)")
        print(f"  anomalies flagged at s {flagged}")
        return body["models"][0]["history_rps"]
    finally:
        for p in reversed(procs):
            p.stop()


def replayed(values: list[float], interval_ms: int) -> None:
    from eldric.roles.router.predict.holt import Params, Series, replay

    unit = interval_ms / 1000
    print(f"\nreplay of the series the router recorded ({len(values)} samples of "
          f"{interval_ms} ms):")
    for ahead in (1, 10, 60):
        holt, naive = replay(values, Params(horizon=max(ahead, 30)), unit, ahead)
        print(f"  {ahead:3d} samples ahead: MAPE {holt:6.1f} %   naive {naive:6.1f} %")

    n = 8640  # a day of 10 s samples
    observed, truth = trace(n)
    print(f"\nreplay of a synthetic day ({n} samples of 10 s, the default interval):")
    for ahead, what in ((1, "10 s"), (6, "1 min"), (30, "5 min")):
        holt, naive = replay(observed, Params(horizon=30), 10.0, ahead)
        s = Series(Params(horizon=30), 10.0)
        err, inside = [], 0
        for i, y in enumerate(observed[:-ahead]):
            s.update(y)
            if i > 30:
                err.append(abs(s.forecast(ahead) - truth[i + ahead]) / truth[i + ahead])
                low, high = s.band(ahead)
                inside += low <= observed[i + ahead] <= high
        print(f"  {what:>5} ahead: MAPE {holt:5.1f} % (naive {naive:5.1f} %); against the "
              f"true rate {100 * sum(err) / len(err):5.1f} %; observed inside the band "
              f"{100 * inside / len(err):5.1f} %")
    s = Series(Params(horizon=30), 10.0)
    flagged = [i for i, y in enumerate(observed) if s.update(y)]
    print(f"  anomalies at samples {flagged} (the burst is at {n // 3}, the step up at "
          f"{int(0.55 * n)} and down at {int(0.675 * n)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="eldric-bench-predict-"))
    try:
        values = asyncio.run(live(args, tmp))
        replayed(values, args.interval_ms)
        print("\ncost:")
        costs()
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")


if __name__ == "__main__":
    main()
