"""From "pull" to routable (a benchmark, not a test).

`python bench/pull_routable.py [--runs 5] [--heartbeat-ms 30000]`

Starts the fake Ollama of the test tree (tests/fakes/ollama_models: Ollama's /api/pull
NDJSON, a 3 MB model in 500 kB steps every 10 ms) in this process, and a controller, a
worker (--backend ollama, registered with the controller, heartbeating every
--heartbeat-ms) and a router syncing from the controller as their own processes on
127.0.0.1. For each run it pulls a new model through the controller and prints, from the
POST:

- `completed`: the job's target completed (the fake's pull plus the worker's refresh);
- `listed`: the model in the router's /v1/models (the worker's immediate heartbeat, the
  controller's change, the router's long-poll);
- `routable`: the first chat completion for it through the router answered 200.

Then p50 over the runs. The heartbeat interval is long on purpose: the model must not
wait for the next heartbeat. Bounded: `--runs` pulls; stops what it started by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
import registry as reg  # noqa: E402  bench/registry.py: start, stop, free_port, wait_ready
from tests.fakes import ollama as fake_ollama  # noqa: E402
from tests.fakes.ollama_models import Models  # noqa: E402


async def _until(pred, limit: float = 30.0, every: float = 0.005) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not await pred():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(every)


async def one(s: aiohttp.ClientSession, controller: str, router: str, model: str
              ) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    async with s.post(controller + "/api/v1/models/pull", json={"model": model}) as r:
        accepted = await r.json()
        if r.status != 202:
            raise SystemExit(f"pull refused: {r.status} {accepted}")
    marks: dict[str, float] = {}

    async def completed() -> bool:
        async with s.get(controller + accepted["status_url"]) as r:
            job = await r.json()
        if job["state"] not in ("running", "completed"):
            raise SystemExit(f"the pull failed: {job}")
        return job["state"] == "completed"

    async def listed() -> bool:
        async with s.get(router + "/v1/models") as r:
            return model in {m["id"] for m in (await r.json())["data"]}

    async def routable() -> bool:
        async with s.post(router + "/v1/chat/completions", json={
                "model": model, "messages": [{"role": "user", "content": "hi"}]}) as r:
            await r.read()
            return r.status == 200

    for name, pred in (("completed", completed), ("listed", listed), ("routable", routable)):
        await _until(pred)
        marks[name] = time.perf_counter() - t0
    return marks["completed"], marks["listed"], marks["routable"]


async def run(args: argparse.Namespace, tmp: Path, procs: list[subprocess.Popen]) -> None:
    names = [f"bench{i}:1b" for i in range(args.runs)]
    models = Models(library={n: [3_000_000, 12_000] for n in names})
    runner = web.AppRunner(fake_ollama.make_app(models=[], manage=models), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ollama = f"http://127.0.0.1:{runner.addresses[0][1]}"
    cport, wport, rport = reg.free_port(), reg.free_port(), reg.free_port()
    controller = f"http://127.0.0.1:{cport}"
    router = f"http://127.0.0.1:{rport}"
    procs.append(reg.start(["--role", "controller", "--port", str(cport), "--bind", "127.0.0.1",
                            "--data-dir", str(tmp / "c")], tmp / "controller.log"))
    await reg.wait_ready(controller, procs[-1])
    procs.append(reg.start(["--role", "worker", "--port", str(wport), "--bind", "127.0.0.1",
                            "--backend", "ollama", "--backend-url", ollama, "--controller",
                            controller, "--heartbeat-interval", str(args.heartbeat_ms),
                            "--data-dir", str(tmp / "w")], tmp / "worker.log"))
    procs.append(reg.start(["--role", "router", "--port", str(rport), "--bind", "127.0.0.1",
                            "--controller", controller, "--data-dir", str(tmp / "r")],
                           tmp / "router.log"))
    try:
        async with aiohttp.ClientSession() as s:
            async def registered() -> bool:
                try:
                    async with s.get(controller + "/api/v1/workers?type=inference") as r:
                        return bool((await r.json())["workers"])
                except aiohttp.ClientError:
                    return False

            async def router_up() -> bool:
                try:
                    async with s.get(router + "/health") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await _until(registered)
            await _until(router_up)
            rows = [await one(s, controller, router, n) for n in names]
    finally:
        await runner.cleanup()
    print(f"{'run':>4} {'completed':>10} {'listed':>8} {'routable':>9}  (s from the POST)")
    for i, (c, li, ro) in enumerate(rows):
        print(f"{i:>4} {c:10.3f} {li:8.3f} {ro:9.3f}")
    med = [statistics.median(col) for col in zip(*rows)]
    print(f" p50 {med[0]:10.3f} {med[1]:8.3f} {med[2]:9.3f}   "
          f"completed -> routable: {med[2] - med[0]:.3f} s "
          f"(heartbeat interval {args.heartbeat_ms} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--heartbeat-ms", type=int, default=30_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="eldric-bench-pull-"))
    procs: list[subprocess.Popen] = []
    try:
        asyncio.run(run(args, tmp, procs))
    finally:
        for proc in procs:
            reg.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
