"""What counting usage costs the edge: CPU per request and per streamed event, usage on
vs off (issue 19).

    python bench/usage.py            # both parts, ~1 min
    python bench/usage.py --quick    # fewer requests

Part A, in process: the meter's own work (begin, the tap on each event with its framing,
the usage chunk taken out, end with its Record and /metrics), process CPU time, in µs.
Part B, real processes on 127.0.0.1: mock worker <- router <- edge, the edge run with
--usage on and with --usage off; the same streamed and whole requests sent one after
another; the edge's CPU (user+system, psutil) per request and per streamed event, in µs.
Every process started is stopped by its own process group.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from bench.procs import Proc, edge_chain  # noqa: E402

TOKENS = 16
BODY = {"model": "eldric-mock", "messages": [{"role": "user", "content": "Say something."}]}


# ---------------------------------------------------------------- part A: in process


class _Req:
    method = "POST"

    def __init__(self) -> None:
        from eldric import keys
        from eldric.context import Hop

        hop = Hop("r", "edge", 0.0, None, model="eldric-mock")  # type: ignore[arg-type]
        self._d = {keys.HOP: hop}

    def __getitem__(self, k):  # type: ignore[no-untyped-def]
        return self._d[k]


def _events() -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "eldric-mock"}
    out = [json.dumps({**base, "choices": [{"index": 0, "delta": {"content": f" w{i}"},
                                            "finish_reason": None}], "usage": None})
           for i in range(TOKENS)]
    out.append(json.dumps({**base, "choices": [], "usage": {
        "prompt_tokens": 3, "completion_tokens": TOKENS, "total_tokens": 3 + TOKENS}}))
    return [b"data: " + e.encode() for e in out] + [b"data: [DONE]"]


def _drive(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine that never suspends (the local budgets, the stand-in recorder)
    without an event loop, so only its own work is timed."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("suspended")


def _cpu_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - t0)
    return best / n * 1e6


def part_a(n: int) -> dict[str, float]:
    from prometheus_client import CollectorRegistry

    from eldric.roles.edge.metrics import EdgeMetrics
    from eldric.roles.edge.usage.budgets import Budgets
    from eldric.roles.edge.usage.config import UsageConfig
    from eldric.roles.edge.usage.face import Usage
    from eldric.roles.edge.usage.sink import Recorder
    from eldric.stream.sse import EventFilter, EventSplitter

    usage = Usage(UsageConfig(), Budgets(), Recorder(1000), EdgeMetrics(CollectorRegistry()))
    body = json.dumps({**BODY, "stream": True}).encode()
    events = [e + b"\n\n" for e in _events()]
    req = _Req()

    def begin_end() -> None:  # a whole reply: begin, the body read, end
        t = _drive(usage.begin(req, None, "/v1/chat/completions", body, "eldric-mock"))
        _drive(t.end(None, status=200))

    def streamed(asked: bool):  # type: ignore[no-untyped-def]
        def run() -> None:  # one chunk an event, as a backend streams
            t = _drive(usage.begin(req, None, "/v1/chat/completions", body, "eldric-mock"))
            stage = EventSplitter(t.tap) if asked else EventFilter(t.drop, t.tap)
            for event in events:
                stage.feed(event)
            stage.close()
            _drive(t.end(None, status=200))
        return run

    request = _cpu_us(begin_end, n)
    return {"request_us": request,
            "event_asked_us": (_cpu_us(streamed(True), n) - request) / len(events),
            "event_not_asked_us": (_cpu_us(streamed(False), n) - request) / len(events)}


# ---------------------------------------------------------------- part B: processes


def _start(tmp: Path, usage: str, procs: list[Proc]) -> str:
    return edge_chain(tmp, usage, procs, ["--usage", usage], BODY, TOKENS)


async def _send(url: str, n: int, stream: bool) -> int:
    events = 0
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            async with s.post(url + "/v1/chat/completions",
                              json={**BODY, "stream": stream}) as r:
                raw = await r.read()
                assert r.status == 200, raw[:200]
                events += raw.count(b"data: ")
    return events


def part_b(n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="eldric-bench-usage-") as d:
        for usage in ("off", "on"):
            procs: list[Proc] = []
            try:
                url = _start(Path(d), usage, procs)
                edge = procs[-1]
                asyncio.run(_send(url, 50, True))  # warm-up
                row = {}
                for stream in (False, True):
                    cpu0 = edge.cpu_seconds()
                    events = asyncio.run(_send(url, n, stream))
                    cpu = edge.cpu_seconds() - cpu0
                    kind = "stream" if stream else "whole"
                    row[f"{kind}_request_us"] = cpu / n * 1e6
                    if stream:
                        row["stream_event_us"] = cpu / max(events, 1) * 1e6
                out[usage] = row
            finally:
                for p in reversed(procs):
                    p.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    micro = part_a(1_000 if a.quick else 10_000)
    print("A. the meter's own CPU in process (with usage off all of it is 0):")
    print(f"   per request (begin, end: the Record, /metrics):     {micro['request_us']:6.1f} µs")
    print(f"   per streamed event, the client asked for usage:     "
          f"{micro['event_asked_us']:6.2f} µs")
    print(f"   per streamed event, the usage chunk taken out too:  "
          f"{micro['event_not_asked_us']:6.2f} µs")
    rows = part_b(200 if a.quick else 1000)
    print("B. the edge process's CPU (mock worker <- router <- edge, one request at a time):")
    print(f"   {'':18}{'usage off':>12}{'usage on':>12}{'added':>10}")
    for key, label in (("whole_request_us", "whole request"),
                       ("stream_request_us", "stream request"),
                       ("stream_event_us", "streamed event")):
        off, on = rows["off"][key], rows["on"][key]
        print(f"   {label:<18}{off:10.1f}µs{on:10.1f}µs{on - off:8.1f}µs")
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
