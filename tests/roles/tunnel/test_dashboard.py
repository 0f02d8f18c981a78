"""The controller's dashboard with workers from anywhere (system Chromium, as in
tests/roles/test_controller_dashboard.py): who contributed a worker, and that a tunnelled
one is reached via tunnel; the client's name is text, never markup."""

from __future__ import annotations

import aiohttp

from tests import browser
from tests.conftest import run_eldric
from tests.roles.test_controller_dashboard import INFERENCE, _Dom, _register

TUNNELLED = {**INFERENCE, "url": "tunnel+http://127.0.0.1:8080/tun-home1",
             "contributed_by": "alice-home-gpu"}
EVIL_NAME = "<i>mallory</i>"


async def test_contributed_by_and_via_tunnel_are_shown(tmp_path):
    browser.need_chromium()
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as urls, \
            aiohttp.ClientSession() as s:
        base = urls["controller"]
        home = await _register(s, base, TUNNELLED)
        direct = await _register(s, base, INFERENCE)
        evil = await _register(s, base, {**INFERENCE, "url": "http://127.0.0.1:13",
                                         "contributed_by": EVIL_NAME})
        dom = _Dom()
        dom.feed(await browser.dump_dom(tmp_path, f"{base}/dashboard"))
    row = " ".join(dom.workers[home].split())
    assert "by alice-home-gpu" in row and "via tunnel" in row, row
    assert "tun-home1" in row
    row = " ".join(dom.workers[direct].split())
    assert "by " not in row and "via tunnel" not in row, row
    assert f"by {EVIL_NAME}" in " ".join(dom.workers[evil].split())
    assert "i" not in dom.tags_inside, dom.tags_inside
