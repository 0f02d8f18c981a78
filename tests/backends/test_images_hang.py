"""Image URLs that misbehave, through a worker whose backend takes bytes only (Ollama's
OpenAI API): a host that accepts the connection and never answers, one that answers a
redirect to such a host, one whose headers come and whose body trickles. Each is the
client's 400 image_fetch_failed naming the URL within the worker's --image-timeout-ms,
streamed requests included; nothing reaches the backend and the worker stays healthy."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import openai
import pytest
from aiohttp import web

from tests.backends.imagery import PNG, see
from tests.conftest import run_eldric, url_of
from tests.fakes import ollama as fake_ollama


@pytest.fixture
def silent():  # type: ignore[no-untyped-def]
    """A listening socket nobody accepts from: connects, then silence."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()


async def test_hanging_image_urls_are_a_bounded_400(tmp_path, aiohttp_server, silent):
    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        await resp.prepare(request)
        for b in PNG * 100:
            await resp.write(bytes([b]))
            await asyncio.sleep(0.05)
        return resp

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(silent + "/x.png")

    app = web.Application()
    app.router.add_get("/trickle.png", trickle)
    app.router.add_get("/moved.png", moved)
    host = url_of(await aiohttp_server(app))
    backend = await aiohttp_server(fake_ollama.make_app())
    got = backend.app[fake_ollama.IMAGES]
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="ollama",
                          backend_url=url_of(backend), image_timeout="700ms") as w:
        c = openai.AsyncOpenAI(base_url=w["worker"] + "/v1", api_key="x", max_retries=0,
                               timeout=30)
        model = fake_ollama.TAGS[0]
        try:
            for url in (silent + "/x.png", f"{host}/moved.png", f"{host}/trickle.png"):
                for stream in (False, True):
                    t0 = time.monotonic()
                    with pytest.raises(openai.BadRequestError) as exc:
                        await c.chat.completions.create(model=model, messages=see(url),
                                                        stream=stream)
                    took = time.monotonic() - t0
                    assert exc.value.body["code"] == "image_fetch_failed", url
                    assert url in exc.value.body["message"]
                    assert 0.6 < took < 5, (url, took)
        finally:
            await c.close()
        assert got == []
        async with aiohttp.ClientSession() as s, s.get(w["worker"] + "/health") as r:
            assert (await r.json())["backend"]["healthy"] is True
