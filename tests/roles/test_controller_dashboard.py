"""The controller's dashboard, rendered by the system Chromium against a real controller.

No browser is downloaded: the test drives Debian's `chromium` package headless
(tests/browser.py), twice: --dump-dom (the DOM after the page's JS fetched the API and
rendered it) and --screenshot (copied to /tmp/eldric-dashboard.png for a human to look at).
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from urllib.parse import quote

import aiohttp
import pytest

from tests import browser
from tests.browser import STEP_TIMEOUT
from tests.conftest import run_eldric

SCREENSHOT_COPY = "/tmp/eldric-dashboard.png"

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
    browser.need_chromium()
    started = time.monotonic()
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as urls:
        base = urls["controller"]
        async with aiohttp.ClientSession() as session:
            inf = await _register(session, base, INFERENCE)
            cld = await _register(session, base, CLOUD)
            evil = await _register(session, base, EVIL)
            assert evil == EVIL_ID

            # 1. The DOM after the page's JS has fetched the API and rendered it (and
            # nothing logged to the console: errors, failed loads).
            dom = _Dom()
            dom.feed(await browser.dump_dom(tmp_path, f"{base}/dashboard"))
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
            size = await browser.screenshot(tmp_path, f"{base}/dashboard", SCREENSHOT_COPY)
    print(f"dashboard screenshot: {SCREENSHOT_COPY} ({size} bytes, "
          f"{time.monotonic() - started:.1f}s)")
