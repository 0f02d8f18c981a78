"""The Models tab when its event stream goes silent without closing (a half-open link: a
network blip that left no FIN): the page, served through a proxy that stops passing on
the stream's bytes but keeps the connection, notices the job list moved on, opens the
stream again and shows the pull as it ended: no bar stuck at its last percent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from tests import browser
from tests.browser import STEP_TIMEOUT
from tests.conftest import run_eldric, until, url_of
from tests.fakes import ollama as fake_ollama
from tests.fakes.ollama_models import Models
from tests.models.fleet import get
from tests.models.models_tab import LIVE, healthy, open_tab, pull

MODEL = "llama3.2:1b"
EVENTS = "/api/v1/models/events"
_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive", "host",
        "content-encoding"}


@dataclass
class Tap:
    freeze: asyncio.Event = field(default_factory=asyncio.Event)
    streams: int = 0  # event streams opened through the proxy


TAP = web.AppKey("tap", Tap)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def proxy_app(upstream: str) -> web.Application:
    """Passes every request on to `upstream`; the event streams open when app[TAP].freeze
    is set stop passing on bytes (their connections stay open)."""
    app = web.Application()
    app[TAP] = Tap()

    async def relay(request: web.Request) -> web.StreamResponse:
        session = request.app[SESSION]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with session.request(request.method, upstream + request.path_qs, headers=headers,
                                   data=await request.read(), allow_redirects=False) as up:
            resp = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items() if k.lower() not in _HOP})
            await resp.prepare(request)
            if request.path == EVENTS:
                tap = request.app[TAP]
                tap.streams += 1
                frozen_at_start = tap.freeze.is_set()
                async for chunk in up.content.iter_any():
                    if tap.freeze.is_set() and not frozen_at_start:
                        await asyncio.Event().wait()  # silent, and never closed
                    await resp.write(chunk)
            else:
                await resp.write(await up.read())
            await resp.write_eof()
            return resp

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app[SESSION] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


@pytest.mark.timeout(3 * STEP_TIMEOUT)
async def test_a_silent_stream_is_noticed_and_the_page_catches_up(aiohttp_server, tmp_path):
    browser.need_chromium()
    # About 0.5 MB/s: the 3 MB pull is still going when the stream goes silent.
    ollama = await aiohttp_server(fake_ollama.make_app(manage=Models(chunk=50_000, tick=0.1)))
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1",
                          admin_key="ak", cluster_key="ck") as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        proxy = await aiohttp_server(proxy_app(base))
        async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                              backend="ollama", backend_url=url_of(ollama), controller=base,
                              api_key="ck", heartbeat_interval=200):
            await until(lambda: healthy(s, base, 1), timeout=20)
            async with browser.chromium(tmp_path) as cdp:
                await open_tab(cdp, url_of(proxy))
                await pull(cdp, MODEL)
                shown = ("(() => { const tr = document.querySelector('.job tr[data-worker-id]');"
                         " return tr && [tr.dataset.state, tr.dataset.percent]; })()")
                await cdp.wait_for(f"(() => {{ const r = {shown}; return r && r[0] === 'pulling'"
                                   " && r[1] !== '' && +r[1] < 50; })()", "the pull to be moving")
                proxy.app[TAP].freeze.set()
                job_id = await cdp.js("document.querySelector('.job').dataset.jobId")
                await until(lambda: _state(s, base, job_id, "completed"), timeout=30)
                # The controller says completed; the page's stream says nothing more. It
                # must find out by itself, and be on a live stream again.
                got = await cdp.wait_for(f"(() => {{ const r = {shown};"
                                         " return r && r[0] === 'completed' && r; })()",
                                         "the page to catch up with the silent stream", timeout=20)
                assert got == ["completed", "100"], got
                await cdp.wait_for(LIVE, "the stream to be live again")
                assert proxy.app[TAP].streams >= 2, "the page never opened the stream again"
                assert not cdp.problems, cdp.problems


async def _state(s: aiohttp.ClientSession, base: str, job_id: str, state: str) -> bool:
    _, j = await get(s, f"{base}/api/v1/models/pull-jobs/{job_id}")
    return j["state"] == state
