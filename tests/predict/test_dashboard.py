"""The controller's dashboard shows the routers' load forecasts, rendered by the system
Chromium (tests/browser.py): a real router under traffic heartbeats its forecast to a real
controller, beside a registered router record whose model's rate left its band (and whose
model name is made to break a page that builds HTML from strings)."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import aiohttp
import pytest

from tests import browser
from tests.browser import STEP_TIMEOUT
from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import worker as fake_worker
from tests.predict.test_endpoint import _traffic

SCREENSHOT_COPY = "/tmp/eldric-dashboard-forecast.png"
EVIL_MODEL = '<img src=x onerror="document.title=1">'
REPORTED = {
    "worker_type": "router", "url": "http://127.0.0.1:8882", "version": "0.1.0",
    "id": "rtr-reported", "models": ["llama3.2:3b"],
    "router": {"strategy": "load_based", "strategy_source": "default", "workers": 2,
               "healthy_workers": 2, "forecast": [
                   {"model": "llama3.2:3b", "observed_rps": 42.0, "expected_rps": 6.5,
                    "low_rps": 3.1, "high_rps": 9.9, "minutes": 1, "anomaly": True},
                   {"model": EVIL_MODEL, "observed_rps": 0.5, "expected_rps": 0.5,
                    "low_rps": 0.0, "high_rps": 1.2, "minutes": 1, "anomaly": False}]},
}


class _Forecast(HTMLParser):
    """The rows of tbody#forecast-body: data-forecast-id -> text, and the tags inside."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.row: str | None = None
        self.rows: dict[str, str] = {}
        self.tags: list[str] = []
        self.empty_hidden: bool | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "forecast-empty":
            self.empty_hidden = "hidden" in a
        if tag == "tbody":
            self.inside = a.get("id") == "forecast-body"
        elif self.inside:
            self.tags.append(tag)
            if tag == "tr":
                self.row = a.get("data-forecast-id")
                self.rows[self.row] = ""  # type: ignore[index]

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.inside = False
        elif tag == "tr":
            self.row = None

    def handle_data(self, data):
        if self.inside and self.row is not None:
            self.rows[self.row] += data + " "


@pytest.mark.timeout(4 * STEP_TIMEOUT)
async def test_the_dashboard_shows_the_routers_forecasts(aiohttp_server, tmp_path):
    browser.need_chromium()
    started = time.monotonic()
    worker = await aiohttp_server(fake_worker.make_app("w1", ["m1"]), port=free_port())
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as ctl:
        base = ctl["controller"]
        async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1",
                              workers=url_of(worker), controller=base,
                              heartbeat_interval=200, predict_interval=100,
                              worker_id="rtr-live") as urls:
            async with aiohttp.ClientSession() as s:
                async with s.post(f"{base}/api/v1/workers/register", json=REPORTED) as r:
                    assert r.status == 200, await r.text()
                await _traffic(s, urls["router"], "m1", rps=30, seconds=1.5)

                async def sent():  # the live router's heartbeat carries m1's forecast
                    async with s.get(f"{base}/api/v1/workers/rtr-live") as r:
                        forecast = (await r.json())["router"]["forecast"]
                    return forecast if forecast and forecast[0]["expected_rps"] > 5 else None

                (m1,) = await until(sent, timeout=5)

                page = _Forecast()
                page.feed(await browser.dump_dom(tmp_path, f"{base}/dashboard"))
                assert page.empty_hidden is True
                assert set(page.rows) == {"rtr-live m1", "rtr-reported llama3.2:3b",
                                          f"rtr-reported {EVIL_MODEL}"}, page.rows
                live = page.rows["rtr-live m1"].split()
                # m1, the router, now, in 1 min, the band "low – high", the state (the
                # figures of a later heartbeat than `m1`: the traffic has stopped since)
                assert live[:2] == ["m1", "rtr-live"] and live[5] == "–", live
                now, expected, low, high = (float(live[i]) for i in (2, 3, 4, 6))
                assert low <= expected <= high and now >= 0, live
                assert " ".join(live[7:]) in ("as expected", "anomaly"), live
                assert m1["low_rps"] <= m1["expected_rps"] <= m1["high_rps"]
                reported = " ".join(page.rows["rtr-reported llama3.2:3b"].split())
                assert reported == "llama3.2:3b rtr-reported 42.0 6.50 3.10 – 9.90 anomaly", \
                    reported
                assert EVIL_MODEL in page.rows[f"rtr-reported {EVIL_MODEL}"]
                assert "img" not in page.tags and "script" not in page.tags, page.tags

                size = await browser.screenshot(tmp_path, f"{base}/dashboard", SCREENSHOT_COPY)
    print(f"forecast screenshot: {SCREENSHOT_COPY} ({size} bytes, "
          f"{time.monotonic() - started:.1f}s)")


@pytest.mark.timeout(2 * STEP_TIMEOUT)
async def test_no_forecast_yet_says_so(tmp_path):
    browser.need_chromium()
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as ctl:
        async with aiohttp.ClientSession() as s:
            body = {**REPORTED, "router": {**REPORTED["router"], "forecast": []}}
            async with s.post(f"{ctl['controller']}/api/v1/workers/register", json=body) as r:
                assert r.status == 200
        page = _Forecast()
        page.feed(await browser.dump_dom(tmp_path, f"{ctl['controller']}/dashboard"))
        assert page.rows == {} and page.empty_hidden is False
