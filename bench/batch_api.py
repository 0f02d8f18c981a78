"""Batch API throughput at the edge (a benchmark, not a test).

    python bench/batch_api.py [--lines 200] [--tokens 8] [--delay 0]

Starts the full chain (bench/chain.py: mock <- worker <- router <- edge, each its own
process on 127.0.0.1), uploads a JSONL file of --lines chat requests with the openai SDK,
runs it as a batch (the edge's default --batch-concurrency 4) and polls it to completed.
Prints the batch's lines/s (upload to completed, polling every 50 ms) beside the same
requests sent directly through the edge by 4 concurrent clients, for scale: what the
runner costs over a client doing the same work. The router of this checkout decides
what idle capacity is (no interactive traffic here: every line is admitted). All
processes are stopped at the end (also on error or Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai  # noqa: E402
from chain import API_KEY, start_chain  # noqa: E402
from measure import BODY  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    procs: list = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="eldric-bench-batch-") as tmp:
        try:
            chain = start_chain(Path(tmp), procs, args.tokens, args.delay, notes)
            base = chain["urls"]["chain"].rsplit("/v1/", 1)[0]
            client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=API_KEY, max_retries=0)
            rows = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                     "body": BODY} for i in range(args.lines)]
            data = "".join(json.dumps(r) + "\n" for r in rows).encode()
            t0 = time.perf_counter()
            f = await client.files.create(file=("in.jsonl", data), purpose="batch")
            b = await client.batches.create(input_file_id=f.id, completion_window="24h",
                                            endpoint="/v1/chat/completions")
            while b.status not in ("completed", "failed", "expired", "cancelled"):
                await asyncio.sleep(0.05)
                b = await client.batches.retrieve(b.id)
            took = time.perf_counter() - t0
            print(f"batch: {args.lines} lines in {took:.2f} s = {args.lines / took:.0f} "
                  f"lines/s ({b.status}, completed {b.request_counts.completed}, "
                  f"failed {b.request_counts.failed})")
            left = iter(range(args.lines))

            async def one_client() -> None:
                for _ in left:
                    await client.chat.completions.create(**BODY)
            t0 = time.perf_counter()
            await asyncio.gather(*(one_client() for _ in range(4)))
            took = time.perf_counter() - t0
            print(f"direct: {args.lines} requests by 4 clients in {took:.2f} s = "
                  f"{args.lines / took:.0f} req/s")
            for n in notes:
                print("note:", n)
        finally:
            for p in reversed(procs):
                p.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--delay", type=float, default=0.0, help="mock token delay, ms")
    asyncio.run(main(ap.parse_args()))
