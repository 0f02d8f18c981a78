"""The bounded image fetch (eldric/backends/images.py) against a real aiohttp server."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest
from aiohttp import web

from eldric.backends import images
from eldric.wire.native import chat_in

HITS = web.AppKey("hits", list)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 56


def _app() -> web.Application:
    app = web.Application()
    app[HITS] = []

    async def png(request: web.Request) -> web.Response:
        app[HITS].append(request.path)
        assert "Authorization" not in request.headers
        return web.Response(body=PNG, content_type="image/png")

    async def octet(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="application/octet-stream")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=PNG + b"\x00" * 5000, content_type="image/png")

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"\x00" * 100)
        await resp.write_eof()
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=PNG, content_type="image/png")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="no")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/a.png")

    for path, h in (("/a.png", png), ("/b", octet), ("/page", html), ("/big.png", big),
                    ("/chunked.png", chunked), ("/slow.png", slow),
                    ("/gone.png", missing), ("/loop", loop), ("/moved", moved)):
        app.router.add_get(path, h)
    return app


@pytest.fixture
async def pics(aiohttp_server):
    server = await aiohttp_server(_app())
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session, str(server.make_url("/")), server.app


def _body(*urls: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is it?"},
        *({"type": "image_url", "image_url": {"url": u}} for u in urls)]}]}


async def test_body_urls_become_data_urls_fetched_once(pics):
    session, base, app = pics
    body = _body(f"{base}a.png", f"{base}a.png", "data:image/png;base64,AAAA", f"{base}b")
    body["messages"][0]["content"].append({"type": "image_url", "image_url": f"{base}moved"})
    n = await images.inline(session, body, max_bytes=1000, timeout=5)
    assert n == 4
    parts = body["messages"][0]["content"]
    want = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert [p["image_url"]["url"] for p in parts[1:]] == [want, want,
                                                          "data:image/png;base64,AAAA",
                                                          want, want]
    assert app[HITS].count("/a.png") == 2  # once for the URL given twice, once via /moved
    # the rewritten body reads back as images with their bytes
    conv = chat_in.read(body)
    assert all(p.raw() == PNG for p in conv.turns[0].parts[1:2])


async def test_conversation_images_get_their_bytes(pics):
    session, base, _ = pics
    conv = chat_in.read(_body(f"{base}a.png", f"{base}b"))
    assert await images.inline(session, conv, max_bytes=1000, timeout=5) == 2
    imgs = [p for p in conv.turns[0].parts if isinstance(p, chat_in.Image)]
    assert [(i.url, i.media_type, i.raw()) for i in imgs] == [(None, "image/png", PNG)] * 2


async def test_more_image_urls_than_the_limit_are_refused_before_any_fetch(pics):
    """Each fetched image is held whole until the request is sent: the number of URLs
    one request may have fetched is bounded (a 400 naming the limit), nothing fetched."""
    session, base, app = pics
    many = [f"{base}a.png?n={i}" for i in range(images.MAX_IMAGES + 1)]
    before = len(app[HITS])
    with pytest.raises(images.TooManyImages) as exc:
        await images.inline(session, _body(*many), max_bytes=1000, timeout=5)
    assert exc.value.status == 400 and exc.value.code == "too_many_images"
    assert len(app[HITS]) == before
    # the limit itself is fine, and the same URL many times counts once
    assert await images.inline(session, _body(*many[:-1], *many[:5]), max_bytes=1000,
                               timeout=5) == images.MAX_IMAGES + 5


async def test_text_only_fetches_nothing(pics):
    session, _, app = pics
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert await images.inline(session, body, max_bytes=10, timeout=1) == 0
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("path, why", [
    ("page", "Content-Type 'text/html'"),
    ("big.png", "over the 1000 byte limit"),
    ("chunked.png", "over the 1000 byte limit"),
    ("slow.png", "within 0.3s"),
    ("gone.png", "HTTP 404"),
    ("loop", "redirects"),
])
async def test_failures_are_a_400_naming_the_url(pics, path, why):
    session, base, _ = pics
    body = _body(f"{base}a.png", f"{base}{path}")
    with pytest.raises(images.ImageFetchFailed) as e:
        await images.inline(session, body, max_bytes=1000, timeout=0.3)
    assert e.value.status == 400 and e.value.code == "image_fetch_failed"
    assert f"{base}{path}" in e.value.message and why in e.value.message
    assert e.value.param == "messages[0].content[2].image_url"


async def test_unreachable_host_is_a_400(pics):
    session, _, _ = pics
    from tests.conftest import free_port
    url = f"http://127.0.0.1:{free_port()}/x.png"
    with pytest.raises(images.ImageFetchFailed) as e:
        await images.inline(session, _body(url), max_bytes=1000, timeout=2)
    assert e.value.status == 400 and url in e.value.message


async def test_a_client_leaving_cancels_the_fetches(pics):
    """The request's task cancelled (its client left) while an image is being fetched:
    the fetch is cancelled with it, and no task of it is left running."""
    session, base, _ = pics
    body = _body(f"{base}slow.png", f"{base}a.png")
    before = asyncio.all_tasks()
    task = asyncio.ensure_future(images.inline(session, body, max_bytes=1000, timeout=10))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert [t for t in left if "fetch" in repr(t.get_coro())] == []
    # the image host's handler is being cancelled: its connection was closed
    assert any("RequestHandler" in repr(t.get_coro()) and t.cancelling() for t in left)
    assert body["messages"][0]["content"][1]["image_url"]["url"] == f"{base}slow.png"
