"""What the image tests share: a real 1x1 PNG, chat messages holding image parts, and an
image host (a real aiohttp server) that counts what it served."""

from __future__ import annotations

import base64

from aiohttp import web

from tests.conftest import url_of

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
                       "hgGAWjR9awAAAABJRU5ErkJggg==")
B64 = base64.b64encode(PNG).decode()
DATA = f"data:image/png;base64,{B64}"
HITS = web.AppKey("hits", list)


def see(*urls: str, text: str = "what is it?") -> list[dict]:
    """One user message: the text, then an image_url part per URL."""
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         *({"type": "image_url", "image_url": {"url": u}}
                                           for u in urls)]}]


async def image_host(aiohttp_server) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """A host serving /cat.png (anything else 404): its URL and the paths it served."""
    app = web.Application()
    app[HITS] = []

    async def cat(request: web.Request) -> web.Response:
        app[HITS].append(request.path)
        return web.Response(body=PNG, content_type="image/png")

    app.router.add_get("/cat.png", cat)
    return url_of(await aiohttp_server(app)), app[HITS]
