"""The price of a native adapter: CPU per translated event and per whole reply, in µs,
for every adapter with a case in bench/adapters/<api>.py (issue 20).

    python bench/native.py [--reps 2000]

Each case is (adapter name, an OpenAI chat body, the backend's options, the native
stream's frames as the call hands them to Egress.feed, a native whole reply). Per case,
in this process: the request's translation (the adapter's factory and outbound()), each
stream frame through feed() (and finish()), the whole reply through whole(); medians
of --reps runs, process CPU time (time.process_time_ns). Nothing is sent anywhere: this
is the translation alone, the part of a native request eldric adds on top of the bytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eldric.backends.egress import Context  # noqa: E402
from eldric.backends.table import CHAT, adapters  # noqa: E402

CASES_DIR = Path(__file__).resolve().parent / "adapters"


def cases() -> list[tuple]:
    out = []
    for path in sorted(CASES_DIR.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"bench_adapters_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        out.extend(getattr(mod, "CASES", []))
    return out


def _median_ns(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(reps):
        t0 = time.process_time_ns()
        fn()
        samples.append(time.process_time_ns() - t0)
    return statistics.median(samples)


def measure(case: tuple, reps: int) -> dict[str, float]:
    name, body, options, frames, whole = case
    factory = adapters()[name].ops[CHAT]
    model = body.get("model", "m")
    streamed = {**body, "stream": True}
    ctx = Context(model=model, options=options, include_usage=True)

    def request() -> None:
        factory(body, ctx).outbound()

    def stream() -> None:
        e = factory(streamed, ctx)
        e.outbound()
        for frame in frames:
            e.feed(frame)
        e.finish()

    def stream_setup() -> None:
        factory(streamed, ctx).outbound()

    def whole_reply() -> None:
        e = factory(body, ctx)
        e.outbound()
        e.whole(whole)

    per_stream = _median_ns(stream, reps) - _median_ns(stream_setup, reps)
    return {"request_us": _median_ns(request, reps) / 1000,
            "per_event_us": per_stream / max(1, len(frames)) / 1000,
            "events": len(frames),
            "whole_us": (_median_ns(whole_reply, reps) - _median_ns(request, reps)) / 1000}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=2000)
    args = p.parse_args()
    found = cases()
    if not found:
        print("no cases in bench/adapters/")
        return 1
    print(f"{'adapter':<14} {'request µs':>11} {'per event µs':>13} {'events':>7} "
          f"{'whole reply µs':>15}")
    for case in found:
        r = measure(case, args.reps)
        print(f"{case[0]:<14} {r['request_us']:>11.1f} {r['per_event_us']:>13.2f} "
              f"{r['events']:>7} {r['whole_us']:>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
