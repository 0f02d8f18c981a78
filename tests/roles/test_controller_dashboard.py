"""The controller's dashboard, rendered by the system Chromium against a real controller.

No browser is downloaded: the test drives Debian's `chromium` package headless
(tests/browser.py), twice: --dump-dom (the DOM after the page's JS fetched the API and
rendered it) and --screenshot (copied to /tmp/eldric-dashboard.png for a human to look at).
The layout at 1280×800 is measured in a page driven over DevTools.
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
# Routers register like workers: one fixed in its config (ignores the cluster's strategy),
# one following the controller.
ROUTER_FIXED = {
    "worker_type": "router", "url": "http://127.0.0.1:8881", "version": "0.1.0",
    "models": ["llama3.2:3b", "gpt-4o-mini"], "load": {"active_requests": 4},
    "router": {"strategy": "least_connections", "strategy_source": "config", "workers": 3,
               "healthy_workers": 2},
}
ROUTER_FOLLOWS = {
    "worker_type": "router", "url": "http://127.0.0.1:8882", "version": "0.1.0",
    "models": ["llama3.2:3b"],
    "router": {"strategy": "round_robin", "strategy_source": "controller", "workers": 3,
               "healthy_workers": 3},
}
# A worker with long names, as real ones have: the table must still fit 1280 px.
LONG = {**INFERENCE, "url": "http://gpu-box-17.cluster.internal:8890", "tags": ["gpu", "rtx4090", "rack-3"],
        "models": ["llama3.1:70b-instruct-q4_K_M", "qwen2.5-coder:32b-instruct", "nomic-embed-text:latest"]}
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
        self.routers: dict[str, str] = {}  # data-router-id -> row text
        self.models: dict[str, str] = {}  # data-model-id -> row text
        self.text: dict[str, str] = {"workers-body": "", "routers-body": "", "models-body": ""}
        self.tags_inside: list[str] = []
        self.notice_hidden: bool | None = None
        self.in_routers_summary = False
        self.routers_summary = ""

    def _rows(self) -> dict[str, str]:
        return {"workers-body": self.workers, "routers-body": self.routers,
                "models-body": self.models}[self.section]  # type: ignore[index]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "notice":
            self.notice_hidden = "hidden" in a
        self.in_routers_summary = a.get("id") == "routers-summary"
        if tag == "tbody":
            self.section = a.get("id")
        elif self.section in self.text:
            self.tags_inside.append(tag)
            if tag == "tr":
                self.row = (a.get("data-worker-id") or a.get("data-router-id")
                            or a.get("data-model-id"))
                self._rows()[self.row] = ""

    def handle_endtag(self, tag):
        self.in_routers_summary = False
        if tag == "tbody":
            self.section = None
        elif tag == "tr":
            self.row = None

    def handle_data(self, data):
        if self.in_routers_summary:
            self.routers_summary += data
        if self.section in self.text:
            self.text[self.section] += data + " "
            if self.row is not None:
                self._rows()[self.row] += data + " "


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
            fixed = await _register(session, base, ROUTER_FIXED)
            follows = await _register(session, base, ROUTER_FOLLOWS)
            async with session.post(f"{base}/api/v1/router/config",
                                    json={"strategy": "round_robin"}) as resp:
                assert resp.status == 200

            # 1. The DOM after the page's JS has fetched the API and rendered it (and
            # nothing logged to the console: errors, failed loads).
            dom = _Dom()
            dom.feed(await browser.dump_dom(tmp_path, f"{base}/dashboard"))
            assert set(dom.workers) == {inf, cld, EVIL_ID}, dom.workers  # routers apart
            assert dom.notice_hidden is True, "the page says the controller is unreachable"

            # Routers: the strategy they really use, who set it, and when it is not the
            # cluster's.
            assert set(dom.routers) == {fixed, follows}, dom.routers
            row = " ".join(dom.routers[fixed].split())
            for text in ("healthy", "http://127.0.0.1:8881", "least_connections",
                         "fixed in the router's config", "differs from the cluster's round_robin",
                         "2 / 3", "4", "gpt-4o-mini"):
                assert text in row, (text, row)
            row = dom.routers[follows]
            assert "round_robin" in row and "from this controller" in row, row
            assert "differs" not in row, row
            assert dom.routers_summary == "2 routers · 1 uses another", dom.routers_summary

            row = dom.workers[inf]
            for text in ("inference", "healthy", "ollama", "cpu 42%", "mem 30%", "gpu 63%",
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


# The worker table's width against the page's, and where its heartbeat column sits.
LAYOUT = """(() => {
    const table = document.querySelector("table.workers");
    const box = table.closest(".scroll");
    const heads = [...table.querySelectorAll("thead th")];
    const beat = heads[heads.length - 1];
    const cells = [...table.querySelectorAll("tbody tr")].map((tr) => tr.cells[tr.cells.length - 1]);
    const rect = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.right]; };
    return {page: [document.documentElement.scrollWidth, innerWidth],
            box: [box.scrollWidth, box.clientWidth], heading: beat.textContent.trim(),
            head: rect(beat), cells: cells.map((c) => [c.textContent, ...rect(c)])};
})()"""


@pytest.mark.timeout(3 * STEP_TIMEOUT)
async def test_the_worker_table_fits_1280_px_with_its_heartbeat_column(tmp_path):
    browser.need_chromium()
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as urls:
        base = urls["controller"]
        async with aiohttp.ClientSession() as session:
            for body in (INFERENCE, CLOUD, LONG, ROUTER_FIXED):
                await _register(session, base, body)
        async with browser.chromium(tmp_path, window=(1280, 800)) as cdp:
            await cdp.viewport(1280, 800, mobile=False)
            await cdp.navigate(f"{base}/dashboard")
            await cdp.wait_for("document.querySelectorAll('#workers-body tr').length >= 3",
                               "the workers to be rendered")
            got = await cdp.js(LAYOUT)
            await cdp.screenshot(tmp_path / "layout.png")
    assert got["page"][0] <= got["page"][1], f"the page scrolls sideways: {got}"
    assert got["box"][0] <= got["box"][1], f"the worker table scrolls sideways: {got}"
    assert got["heading"] == "heartbeat"
    assert 0 <= got["head"][0] and got["head"][1] <= 1280, got
    assert len(got["cells"]) >= 3
    for text, left, right in got["cells"]:
        assert re.fullmatch(r"\d+s ago", text.strip()), text
        assert 0 <= left and right <= 1280, got
