"""The controller's dashboard, rendered by the system Chromium against a real controller.

No browser is downloaded: the test drives Debian's `chromium` package headless, twice:
--dump-dom (the DOM after the page's JS fetched the API and rendered it) and
--screenshot (copied to /tmp/eldric-dashboard.png for a human to look at).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tempfile
import time
from html.parser import HTMLParser
from urllib.parse import quote

import aiohttp
import pytest

from tests.conftest import run_eldric

CHROMIUM = "/usr/bin/chromium"
STEP_TIMEOUT = 60  # seconds, per chromium run
SCREENSHOT_COPY = "/tmp/eldric-dashboard.png"

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-domain-reliability",
    "--no-default-browser-check", "--no-proxy-server", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--window-size=1400,900", "--virtual-time-budget=5000",
]

INFERENCE = {
    "worker_type": "inference", "url": "http://127.0.0.1:9", "version": "0.1.0",
    "models": ["llama3.2:3b", "qwen2.5:7b"], "tags": ["gpu"],
    "backend": {"type": "ollama", "url": "http://127.0.0.1:11434", "healthy": True},
    "load": {"cpu_percent": 42.0, "memory_percent": 30.0, "gpu_percent": 63.0,
             "gpu_memory_percent": 71.0, "active_requests": 1, "max_concurrency": 4},
}
CLOUD = {
    "worker_type": "cloud", "url": "http://127.0.0.1:10", "version": "0.1.0",
    "models": ["gpt-4o-mini", "llama3.2:3b"],
    "backend": {"type": "openai", "url": "http://127.0.0.1:8000/v1", "healthy": True},
    "load": {"cpu_percent": 8.5, "memory_percent": 21.0, "active_requests": 3,
             "max_concurrency": 32},
}
# Names a worker controls, made to break a page that builds HTML from strings.
EVIL_ID = '"><img src=x onerror=document.title=1>'
EVIL_MODEL = "<script>document.title=1</script>"
EVIL = {"worker_type": "inference", "url": "http://127.0.0.1:12", "id": EVIL_ID,
        "models": [EVIL_MODEL], "tags": ["<b>x</b>"]}


def _need_chromium() -> None:
    if os.access(CHROMIUM, os.X_OK):
        return
    msg = (f"{CHROMIUM} not found: the dashboard test needs the system Chromium "
           "(Debian package `chromium`; .ci/run installs it)")
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


async def _chromium(tmp_path, *args: str) -> tuple[bytes, str]:
    """Run headless Chromium to completion (bounded), return its stdout and stderr."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"chromium {' '.join(args)} did not finish within {STEP_TIMEOUT}s",
                    pytrace=False)
    finally:
        # Chromium's helpers (zygote, renderer) share its process group, made for it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.returncode is None:
            await proc.wait()
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return out, err.decode(errors="replace")


class _Dom(HTMLParser):
    """What the rendered page holds: rows of the two tables, their text, tags inside them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.section: str | None = None  # id of the tbody being read
        self.row: str | None = None
        self.workers: dict[str, str] = {}  # data-worker-id -> row text
        self.models: dict[str, str] = {}  # data-model-id -> row text
        self.text: dict[str, str] = {"workers-body": "", "models-body": ""}
        self.tags_inside: list[str] = []
        self.notice_hidden: bool | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "notice":
            self.notice_hidden = "hidden" in a
        if tag == "tbody":
            self.section = a.get("id")
        elif self.section in self.text:
            self.tags_inside.append(tag)
            if tag == "tr" and self.section == "workers-body":
                self.row = a.get("data-worker-id")
                self.workers[self.row] = ""
            elif tag == "tr" and self.section == "models-body":
                self.row = a.get("data-model-id")
                self.models[self.row] = ""

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.section = None
        elif tag == "tr":
            self.row = None

    def handle_data(self, data):
        if self.section in self.text:
            self.text[self.section] += data + " "
            if self.row is not None:
                rows = self.workers if self.section == "workers-body" else self.models
                rows[self.row] += data + " "


async def _register(session: aiohttp.ClientSession, base: str, body: dict) -> str:
    async with session.post(f"{base}/api/v1/workers/register", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["id"]


@pytest.mark.timeout(3 * STEP_TIMEOUT)
async def test_dashboard_renders_workers_and_models_in_chromium(tmp_path):
    _need_chromium()
    started = time.monotonic()
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as urls:
        base = urls["controller"]
        async with aiohttp.ClientSession() as session:
            inf = await _register(session, base, INFERENCE)
            cld = await _register(session, base, CLOUD)
            evil = await _register(session, base, EVIL)
            assert evil == EVIL_ID

            # 1. The DOM after the page's JS has fetched the API and rendered it.
            # --enable-logging=stderr puts the page's console (errors, failed loads) on stderr.
            out, err = await _chromium(tmp_path, "--enable-logging=stderr", "--v=0",
                                       "--dump-dom", f"{base}/dashboard")
            console = [line for line in err.splitlines() if ":CONSOLE" in line]
            assert not console, "the page logged to the console:\n" + "\n".join(console)
            dom = _Dom()
            dom.feed(out.decode())
            assert set(dom.workers) == {inf, cld, EVIL_ID}, dom.workers
            assert dom.notice_hidden is True, "the page says the controller is unreachable"

            row = dom.workers[inf]
            for text in ("inference", "healthy", "ollama", "42%", "30%", "63%",
                         "llama3.2:3b", "qwen2.5:7b"):
                assert text in row, (text, row)
            assert re.search(r"\b\d+s ago\b", row), row
            row = dom.workers[cld]
            for text in ("cloud", "healthy", "openai", "9%", "21%", "—", "gpt-4o-mini"):
                assert text in row, (text, row)

            assert {"llama3.2:3b", "qwen2.5:7b", "gpt-4o-mini", EVIL_MODEL} <= set(dom.models)
            assert "llama3.2:3b" in dom.text["models-body"]
            assert dom.models["llama3.2:3b"].split()[:2] == ["llama3.2:3b", "2"]

            # Worker-supplied names are shown as text, never parsed as markup.
            assert EVIL_ID in dom.workers[EVIL_ID] and "<b>x</b>" in dom.workers[EVIL_ID]
            assert EVIL_MODEL in dom.text["models-body"]
            assert not {"img", "script", "b"} & set(dom.tags_inside), dom.tags_inside

            # 2. A screenshot with just the two well-behaved workers.
            async with session.delete(f"{base}/api/v1/workers/{quote(EVIL_ID, safe='')}") as resp:
                assert resp.status == 200, await resp.text()
            png = tmp_path / "dashboard.png"
            await _chromium(tmp_path, f"--screenshot={png}", f"{base}/dashboard")
    assert png.exists(), "chromium wrote no screenshot"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000, f"screenshot is only {len(data)} bytes: a blank page?"
    shutil.copyfile(png, SCREENSHOT_COPY)
    print(f"dashboard screenshot: {SCREENSHOT_COPY} ({len(data)} bytes, "
          f"{time.monotonic() - started:.1f}s)")
