"""Model registry throughput and memory (a benchmark, not a test).

`python bench/registry.py [--size-mb 1024] [--keep-tmp]`

Makes a GGUF-headed file of the given size, starts a real controller (its own process,
on 127.0.0.1, registry at DATA_DIR/registry), then prints:

- `cp` of the file (the disk's own figure on this machine, the file in the page cache);
- upload (raw body, the aiohttp client streaming the file) MB/s, and the controller's RSS
  before and at its peak during the upload (flat: the file is never held in memory);
- download MB/s (the body read and dropped by the client), whole and resumed from the
  middle with Range.

Bounded: one upload, two downloads; stops the controller it started and removes its
files (unless --keep-tmp).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

ADMIN = "bench-admin"
API = "/api/v1/model-registry"
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_file(path: Path, size: int) -> None:
    """A GGUF v3 header (one key, no tensors), then incompressible filler."""
    key = b"general.architecture"
    head = (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key +
            struct.pack("<IQ", 8, 5) + b"bench")
    block = os.urandom(MB)
    with open(path, "wb") as f:
        f.write(head)
        left = size - len(head)
        while left > 0:
            f.write(block[:min(MB, left)])
            left -= MB


async def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{url}: its process exited ({proc.returncode})")
            try:
                async with s.get(url + "/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not get ready within {timeout} s")


async def sample_rss(ps: psutil.Process, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], ps.memory_info().rss)
        except psutil.Error:
            return
        await asyncio.sleep(0.02)


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MB / seconds:8.1f} MB/s  ({seconds:6.2f} s)"


async def measure(url: str, src: Path, size: int, ps: psutil.Process) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        rss_before = ps.memory_info().rss
        peak, stop = [rss_before], asyncio.Event()
        sampler = asyncio.create_task(sample_rss(ps, peak, stop))
        t0 = time.perf_counter()
        with open(src, "rb") as f:
            async with s.post(f"{url}{API}/upload", params={"name": "bench"}, data=f,
                              headers={"Authorization": f"Bearer {ADMIN}",
                                       "Content-Type": "application/octet-stream"}) as r:
                body = await r.json()
                if r.status != 201:
                    raise SystemExit(f"upload failed: {r.status} {body}")
        up = time.perf_counter() - t0
        stop.set()
        await sampler
        print(f"upload              {rate(size, up)}")
        print(f"controller RSS      before {rss_before / MB:7.1f} MiB, peak during the "
              f"upload {peak[0] / MB:7.1f} MiB (file {size / MB:.0f} MiB)")

        for label, headers, expect in (("download", {}, size),
                                       ("download, resumed", {"Range": f"bytes={size // 2}-"},
                                        size - size // 2)):
            t0 = time.perf_counter()
            got = 0
            async with s.get(f"{url}{API}/bench/download",
                             headers={"Authorization": f"Bearer {ADMIN}", **headers}) as r:
                async for chunk in r.content.iter_chunked(MB):
                    got += len(chunk)
            took = time.perf_counter() - t0
            assert got == expect, (got, expect)
            print(f"{label:<20}{rate(got, took)}")


def start(args: list[str], log: Path) -> subprocess.Popen:
    """`eldric ARGS` in its own session (stop() ends it whole), warnings to `log`."""
    return subprocess.Popen([sys.executable, "-m", "eldric", *args, "--log-level", "warning"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(log, "wb"), start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """Stop a process this benchmark started (its whole session), SIGKILL after 15 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    size = args.size_mb * MB
    tmp = Path(tempfile.mkdtemp(prefix="eldric-bench-registry-"))
    proc = None
    try:
        src = tmp / "model.gguf"
        make_file(src, size)
        t0 = time.perf_counter()
        subprocess.run(["cp", str(src), str(tmp / "copy.gguf")], check=True)
        print(f"cp                  {rate(size, time.perf_counter() - t0)}")
        (tmp / "copy.gguf").unlink()

        port = free_port()
        proc = start(["--role", "controller", "--port", str(port), "--bind", "127.0.0.1",
                      "--data-dir", str(tmp / "data"), "--admin-key", ADMIN],
                     tmp / "controller.log")
        url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(url, proc))
        asyncio.run(measure(url, src, size, psutil.Process(proc.pid)))
    finally:
        if proc is not None:
            stop(proc)
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
