"""The system Chromium for the browser tests: find it (or skip; fail on CI), run it
headless with the standard flags, and kill its whole process group however a test ends;
a page's DOM after its scripts ran, and screenshots checked and kept for a human to see.

No browser is downloaded: Debian's `chromium` package (.ci/run installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
STEP_TIMEOUT = 60  # seconds, per one-shot chromium run

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-domain-reliability",
    "--no-default-browser-check", "--no-proxy-server", "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def need_chromium() -> None:
    """Skip the test without the system Chromium; on CI (CI=true) that is a failure."""
    if os.access(CHROMIUM, os.X_OK):
        return
    msg = (f"{CHROMIUM} not found: this browser test needs the system Chromium "
           "(Debian package `chromium`; .ci/run installs it)")
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


async def launch(profile, *args: str, window: tuple[int, int], stdout: int | None,
                 stderr: int | None) -> asyncio.subprocess.Process:
    """Start headless Chromium with the standard flags in a new process group (its helpers,
    zygote and renderers, join it: kill() ends them all)."""
    return await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--window-size={window[0]},{window[1]}",
        f"--user-data-dir={profile}", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)


async def kill(proc: asyncio.subprocess.Process) -> None:
    """Kill Chromium's whole process group and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10)


async def run(tmp_path, *args: str, window: tuple[int, int] = (1400, 900),
              timeout: float = STEP_TIMEOUT) -> tuple[bytes, str]:
    """Run headless Chromium on one page to completion (--dump-dom, --screenshot=…), within
    `timeout`, with 5 s of the page's virtual time; return its stdout and stderr."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    proc = await launch(profile, "--virtual-time-budget=5000", *args, window=window,
                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        pytest.fail(f"chromium {' '.join(args)} did not finish within {timeout}s", pytrace=False)
    finally:
        await kill(proc)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return out, err.decode(errors="replace")


async def dump_dom(tmp_path, url: str) -> str:
    """The page's DOM after its scripts ran. The page must not log to the console:
    --enable-logging=stderr puts its console (errors, failed loads, CSP refusals) on stderr."""
    out, err = await run(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    console = [line for line in err.splitlines() if ":CONSOLE" in line]
    assert not console, "the page logged to the console:\n" + "\n".join(console)
    return out.decode()


def keep_png(png: Path, copy_to: str) -> int:
    """Check that Chromium wrote a real screenshot (a PNG, not a blank page) and copy it
    where a human can look at it; return its size."""
    assert png.exists(), "chromium wrote no screenshot"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000, f"screenshot is only {len(data)} bytes: a blank page?"
    shutil.copyfile(png, copy_to)
    return len(data)


async def screenshot(tmp_path, url: str, copy_to: str) -> int:
    """Screenshot the page (window size as run()'s) to copy_to, checked by keep_png."""
    png = tmp_path / Path(copy_to).name
    await run(tmp_path, f"--screenshot={png}", url)
    return keep_png(png, copy_to)
