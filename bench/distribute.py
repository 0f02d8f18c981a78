"""Distribution throughput (a benchmark, not a test).

`python bench/distribute.py [--size-mb 1024] [--keep-tmp]`

Starts a real controller and a real llama.cpp-kind worker (its own processes, on
127.0.0.1; the worker's backend is not running, which model operations do not need),
uploads a GGUF-headed file of the given size to the controller's registry, then prints:

- `cp` of the file (the disk's own figure here);
- distribute from the registry to the worker on the same host: the worker sees the
  registry's file at its path (a shared filesystem) and links it: seconds from the POST
  to the job completed;
- distribute of the same file as a URL (the registry's download): the worker downloads
  it into its --models-dir, sha256 verified: MB/s from the POST to the job completed,
  and the controller's RSS before and at its peak meanwhile (flat: it streams the file).

Bounded: one upload, two jobs; stops what it started and removes its files (unless
--keep-tmp). Reuses bench/registry.py's file maker and waits.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import registry as reg  # noqa: E402  bench/registry.py

MB = reg.MB


async def job_done(s: aiohttp.ClientSession, url: str, body: dict) -> tuple[float, dict]:
    t0 = time.perf_counter()
    async with s.post(url + "/api/v1/models/distribute", json=body) as r:
        accepted = await r.json()
        if r.status != 202:
            raise SystemExit(f"distribute refused: {r.status} {accepted}")
    while True:
        async with s.get(url + accepted["status_url"]) as r:
            job = await r.json()
        if job["state"] != "running":
            return time.perf_counter() - t0, job
        await asyncio.sleep(0.01)


async def measure(url: str, src: Path, size: int, ps: psutil.Process) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        with open(src, "rb") as f:
            async with s.post(f"{url}{reg.API}/upload", params={"name": "bench"}, data=f,
                              headers={"Content-Type": "application/octet-stream"}) as r:
                entry = await r.json()
                if r.status != 201:
                    raise SystemExit(f"upload failed: {r.status} {entry}")
        while True:  # the worker registered
            async with s.get(url + "/api/v1/workers?type=inference") as r:
                if (await r.json())["workers"]:
                    break
            await asyncio.sleep(0.1)
        took, job = await job_done(s, url, {"model": "bench", "source": "registry"})
        print(f"distribute, linked  {took:8.3f} s  ({job['state']}: "
              f"{job['targets'][0]['message'] or job['targets'][0]['error']})")
        rss_before = ps.memory_info().rss
        peak, stop = [rss_before], asyncio.Event()
        sampler = asyncio.create_task(reg.sample_rss(ps, peak, stop))
        took, job = await job_done(s, url, {
            "model": "bench-copy", "source": "url", "sha256": entry["sha256"],
            "url": f"{url}{reg.API}/{entry['id']}/download"})
        stop.set()
        await sampler
        if job["state"] != "completed":
            raise SystemExit(f"the copy failed: {job}")
        print(f"distribute, copied  {reg.rate(size, took)}")
        print(f"controller RSS      before {rss_before / MB:7.1f} MiB, peak during the copy "
              f"{peak[0] / MB:7.1f} MiB (file {size / MB:.0f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    size = args.size_mb * MB
    tmp = Path(tempfile.mkdtemp(prefix="eldric-bench-distribute-"))
    procs: list[subprocess.Popen] = []
    try:
        src = tmp / "model.gguf"
        reg.make_file(src, size)
        t0 = time.perf_counter()
        subprocess.run(["cp", str(src), str(tmp / "copy.gguf")], check=True)
        print(f"cp                  {reg.rate(size, time.perf_counter() - t0)}")
        (tmp / "copy.gguf").unlink()
        port, wport = reg.free_port(), reg.free_port()
        url = f"http://127.0.0.1:{port}"
        procs.append(reg.start(["--role", "controller", "--port", str(port), "--bind", "127.0.0.1",
                                "--data-dir", str(tmp / "c")], tmp / "controller.log"))
        asyncio.run(reg.wait_ready(url, procs[0]))
        procs.append(reg.start(["--role", "worker", "--port", str(wport), "--bind", "127.0.0.1",
                                "--backend", "llamacpp", "--backend-url",
                                f"http://127.0.0.1:{reg.free_port()}", "--controller", url,
                                "--data-dir", str(tmp / "w"), "--models-dir",
                                str(tmp / "w" / "models")], tmp / "worker.log"))
        asyncio.run(measure(url, src, size, psutil.Process(procs[0].pid)))
    finally:
        for proc in procs:
            reg.stop(proc)
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
