"""The price of a native adapter: CPU per translated event and per whole reply, in µs,
for every adapter with a case in bench/adapters/<api>.py (issue 20).

    python bench/native.py [--reps 2000]

Each case is (adapter name, an OpenAI chat body, the backend's options, the native
stream's frames as the call hands them to Egress.feed, a native whole reply). Per case,
in this process: the request's translation (the adapter's factory and outbound()), each
stream frame through feed() (and finish(), per event), the whole reply through whole();
medians of --reps runs, process CPU time (time.process_time_ns), the Egress made
outside the timed part. Nothing is sent anywhere: this
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


def _median_ns(make, run, reps: int) -> float:  # type: ignore[no-untyped-def]
    """The median CPU time of run(x) over reps fresh x = make() (make not timed)."""
    samples = []
    for _ in range(reps):
        x = make()
        t0 = time.process_time_ns()
        run(x)
        samples.append(time.process_time_ns() - t0)
    return statistics.median(samples)


def measure(case: tuple, reps: int) -> dict[str, float]:
    name, body, options, frames, whole = case
    factory = adapters()[name].ops[CHAT]
    model = body.get("model", "m")
    streamed = {**body, "stream": True}
    ctx = Context(model=model, options=options, include_usage=True)

    def stream(e) -> None:  # type: ignore[no-untyped-def]
        for frame in frames:
            e.feed(frame)
        e.finish()

    def made(b: dict):  # type: ignore[no-untyped-def]
        def make():  # type: ignore[no-untyped-def]
            e = factory(b, ctx)
            e.outbound()
            return e
        return make

    return {"request_us": _median_ns(lambda: None,
                                     lambda _: factory(body, ctx).outbound(), reps) / 1000,
            "per_event_us": _median_ns(made(streamed), stream, reps) / max(1, len(frames))
            / 1000,
            "events": len(frames),
            "whole_us": _median_ns(made(body), lambda e: e.whole(whole), reps) / 1000}


def framing(reps: int) -> list[tuple[str, float]]:
    """The cutters' own cost per frame: 20 SSE events, and 20 AWS event-stream messages
    (CRC32s checked), each fed as one chunk of the reply."""
    from eldric.backends import eventstream
    from eldric.backends.framing import frames

    payload = b'{"contentBlockIndex":0,"delta":{"text":" word"}}'
    sse = b"".join(b"data: " + payload + b"\n\n" for _ in range(20))
    aws = b"".join(eventstream.event("contentBlockDelta", payload) for _ in range(20))
    out = []
    for name, kind, data in (("sse", "sse", sse), ("aws event-stream", "aws", aws)):
        ns = _median_ns(lambda k=kind: frames(k), lambda f, d=data: (f.feed(d), f.close()), reps)
        out.append((name, ns / 20 / 1000))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=2000)
    args = p.parse_args()
    found = cases()
    if not found:
        print("no cases in bench/adapters/")
        return 1
    print(f"{'adapter (model)':<48} {'request µs':>11} {'per event µs':>13} {'events':>7} "
          f"{'whole reply µs':>15}")
    for case in found:
        r = measure(case, args.reps)
        label = f"{case[0]} ({case[1].get('model', '?')})"
        print(f"{label:<48} {r['request_us']:>11.1f} {r['per_event_us']:>13.2f} "
              f"{r['events']:>7} {r['whole_us']:>15.1f}")
    print()
    for name, us in framing(args.reps):
        print(f"framing: {name:<24} {us:>6.2f} µs per frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
