"""The cloud worker's dashboard, rendered by the system Chromium against a real cloud role.

Two fake OpenAI-compatible providers: alpha accepts the cloud's requests, beta wants a key
the cloud does not have (so it shows "key refused"). A few chat completions go through the
cloud first, so the usage table has rows. Then Chromium, headless, twice: --dump-dom (the
DOM after the page's JS fetched the API and rendered it) and --screenshot (copied to
/tmp/eldric-cloud-dashboard.png for a human to look at). Chromium's flags, time limits,
process-group kill and CI behaviour are tests/browser.py's, as for the controller's.
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import aiohttp
import pytest

from tests import browser
from tests.browser import STEP_TIMEOUT
from tests.conftest import run_eldric, url_of
from tests.fakes import openai_server
from tests.fakes.openai_server import KNOBS

SCREENSHOT_COPY = "/tmp/eldric-cloud-dashboard.png"
ALPHA_MODELS = ["gpt-4o-mini", "text-embedding-3-small"]
BETA_MODELS = ["llama-3.3-70b"]
# A model name a provider controls, made to break a page that builds HTML from strings.
EVIL_MODEL = "<img src=x onerror=document.title=1>"
MSG = [{"role": "user", "content": "hi"}]
CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"


class _Dom(HTMLParser):
    """What the rendered page holds: the cells of the two tables' rows and the tooltips in
    them, the tags inside the tables, the notice, the title, the header's and cards' text."""

    BODIES = ("backends-body", "usage-body")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.section: str | None = None  # id of the tbody being read
        self.row: list[str] | None = None  # cells of the row being read
        self.backends: dict[str, list[str]] = {}  # data-backend -> cell texts
        self.titles: dict[str, list[str]] = {}  # data-backend -> title attributes in the row
        self.usage: dict[tuple[str, str], list[str]] = {}  # (data-backend, data-model) -> cells
        self.tags_inside: list[str] = []
        self.notice_hidden: bool | None = None
        self.ids: dict[str, str] = {}  # text of header and card spans with an id
        self._open: list[str | None] = []  # ids of the open spans outside the tables
        self._in_title = False
        self.title = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "title":
            self._in_title = True
        if a.get("id") == "notice":
            self.notice_hidden = "hidden" in a
        if tag == "tbody":
            self.section = a.get("id")
        elif self.section in self.BODIES:
            self.tags_inside.append(tag)
            if tag == "tr":
                self.row = []
                if self.section == "backends-body":
                    self.backends[a.get("data-backend")] = self.row
                    self.titles[a.get("data-backend")] = self._titles = []
                else:
                    self.usage[(a.get("data-backend"), a.get("data-model"))] = self.row
            elif tag == "td" and self.row is not None:
                self.row.append("")
            if a.get("title") and self.section == "backends-body" and self.row is not None:
                self._titles.append(a["title"])
        elif tag in ("span", "strong"):
            self._open.append(a.get("id"))
            if a.get("id"):
                self.ids[a["id"]] = ""

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag == "tbody":
            self.section = None
        elif tag == "tr":
            if self.row is not None:
                self.row[:] = [" ".join(cell.split()) for cell in self.row]
            self.row = None
        elif tag in ("span", "strong") and self.section is None and self._open:
            self._open.pop()

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        for ident in self._open:
            if ident:
                self.ids[ident] += data
        if self.section in self.BODIES and self.row:
            self.row[-1] += data + " "


async def _chat(session: aiohttp.ClientSession, base: str, model: str, stream: bool = False) -> str:
    async with session.post(f"{base}/v1/chat/completions",
                            json={"model": model, "messages": MSG, "stream": stream}) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
        return resp.headers["X-Eldric-Backend"]


@pytest.mark.timeout(3 * STEP_TIMEOUT)
async def test_cloud_dashboard_renders_backends_and_usage_in_chromium(aiohttp_server, tmp_path):
    browser.need_chromium()
    started = time.monotonic()
    alpha = await aiohttp_server(openai_server.make_app())
    alpha.app[KNOBS].models = [*ALPHA_MODELS, EVIL_MODEL]
    beta = await aiohttp_server(openai_server.make_app())
    beta.app[KNOBS].models = list(BETA_MODELS)
    beta.app[KNOBS].api_key = "right"  # the cloud sends "wrong-key": beta refuses it
    gamma = await aiohttp_server(aiohttp.web.Application())  # answers, but no model list
    backends = (f"alpha:{url_of(alpha)}/v1,beta:{url_of(beta)}/v1:wrong-key,"
                f"gamma:{url_of(gamma)}/v1")

    async with run_eldric("cloud", tmp_path, port=0, bind="127.0.0.1", backends=backends) as urls:
        base = urls["cloud"]
        async with aiohttp.ClientSession() as session:
            # Usage to show: two chats for gpt-4o-mini (one streamed), one for the evil name.
            assert await _chat(session, base, "gpt-4o-mini") == "alpha"
            assert await _chat(session, base, "gpt-4o-mini", stream=True) == "alpha"
            assert await _chat(session, base, EVIL_MODEL) == "alpha"
            # And one alpha refuses (a rate limit): an error on its usage row.
            alpha.app[KNOBS].fail_status = 429
            alpha.app[KNOBS].fail_body = (b'{"error": {"message": "Rate limit reached", '
                                          b'"type": "requests", "param": null, "code": 429}}')
            async with session.post(f"{base}/v1/chat/completions",
                                    json={"model": "gpt-4o-mini", "messages": MSG}) as resp:
                assert resp.status >= 400, await resp.text()  # 429 or, failed over, 503
            alpha.app[KNOBS].fail_status = None

            # The page and its files are eldric's own, under a strict CSP.
            async with session.get(f"{base}/dashboard") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Security-Policy"] == CSP
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assert "/static/cloud/dashboard.js" in await resp.text()
            for name, kind in (("dashboard.js", "javascript"), ("dashboard.css", "css")):
                async with session.get(f"{base}/static/cloud/{name}") as resp:
                    assert resp.status == 200 and kind in resp.content_type, (name, resp.content_type)

            # 1. The DOM after the page's JS has fetched the API and rendered it (and
            # nothing logged to the console: errors, CSP refusals).
            html = await browser.dump_dom(tmp_path, f"{base}/dashboard")
            dom = _Dom()
            dom.feed(html)
            assert set(dom.backends) == {"alpha", "beta", "gamma"}, dom.backends
            assert dom.notice_hidden is True, "the page says the cloud worker is unreachable"

            # backend (type below), status, url, key, priority, latency, models, requests,
            # errors, prompt tokens, completion tokens, last check
            row = dom.backends["alpha"]
            assert row[:5] == ["alpha openai_compatible", "healthy", url_of(alpha) + "/v1",
                               "none", "100"], row
            assert re.fullmatch(r"\d+ ms|—", row[5]), row
            assert row[6:11] == ["3", "4", "1", "9", "15"], row
            assert re.fullmatch(r"\d+s ago", row[11]), row
            row = dom.backends["beta"]
            assert row[:5] == ["beta openai_compatible", "key refused !", url_of(beta) + "/v1",
                               "…", "100"], row  # the key masked: never shown
            assert row[6:11] == ["0"] * 5, row
            assert "wrong-key" not in html
            assert any("401" in t for t in dom.titles["beta"]), dom.titles["beta"]  # last error
            row = dom.backends["gamma"]
            assert row[:2] == ["gamma openai_compatible", "degraded !"], row
            assert any("HTTP 404" in t for t in dom.titles["gamma"]), dom.titles["gamma"]

            # backend, model, requests, errors, prompt (2×3) and completion (2×5) tokens, share
            assert dom.usage[("alpha", "gpt-4o-mini")] == [
                "alpha", "gpt-4o-mini", "3", "1", "6", "10", "75%"], dom.usage
            assert dom.usage[("alpha", EVIL_MODEL)] == [
                "alpha", EVIL_MODEL, "1", "0", "3", "5", "25%"], dom.usage
            assert len(dom.usage) == 2, dom.usage

            assert dom.ids["count-total"] == "3" and dom.ids["count-healthy"] == "1", dom.ids
            assert dom.ids["count-degraded"] == "1" and dom.ids["degraded-sub"] == "gamma", dom.ids
            assert dom.ids["count-unhealthy"] == "1" and dom.ids["count-requests"] == "4", dom.ids
            assert dom.ids["count-errors"] == "1 failed", dom.ids
            assert dom.ids["count-tokens"] == "24", dom.ids  # 3 × (3 prompt + 5 completion)
            assert dom.ids["status"] == "degraded", dom.ids

            # Provider-supplied names are shown as text, never parsed as markup.
            assert not {"img", "script"} & set(dom.tags_inside), dom.tags_inside
            assert dom.title.startswith("eldric cloud"), dom.title

            # 2. A screenshot.
            size = await browser.screenshot(tmp_path, f"{base}/dashboard", SCREENSHOT_COPY)
    print(f"cloud dashboard screenshot: {SCREENSHOT_COPY} ({size} bytes, "
          f"{time.monotonic() - started:.1f}s)")
