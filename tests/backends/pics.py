"""A tiny native API that takes images as bytes only, for testing eldric's image
handling in eldric.backends.call (not shipped, no real server speaks it).

- ``GET /pics/models`` -> ``{"models": ["pic-1", "pic-see"]}``;
- ``POST /pics/look`` ``{"model", "prompt", "images": [{"type": media type, "b64": …}]}``
  -> ``{"answer": "<n> image(s): <types>"}``; an image that is not bytes (a URL) is its
  400 ``{"problem": …}``, as Bedrock's and Gemini's inline images would be.
"""

from __future__ import annotations

import base64
import json

import msgspec
from aiohttp import web

from eldric.backends import auth
from eldric.backends.egress import Adapter, Context, Outbound, Reach
from eldric.backends.table import CHAT
from eldric.errors import error_json
from eldric.wire.native import chat_in, chat_out

MODELS = ["pic-1", "pic-see"]
SEEN = web.AppKey("seen", list)  # each /pics/look body, decoded


class _Look:
    stream = False

    def __init__(self, body: dict, ctx: Context) -> None:
        self.conv = chat_in.read(body, model=ctx.model)
        self.ctx = ctx
        self.done = False
        self.usage: tuple[int, int] | None = None

    def outbound(self) -> Outbound:
        imgs = [{"type": p.media_type, "b64": p.data, "url": p.url}
                for t in self.conv.turns for p in t.parts if isinstance(p, chat_in.Image)]
        return Outbound("/pics/look", msgspec.json.encode(
            {"model": self.conv.model, "prompt": self.conv.prompt(), "images": imgs}),
            headers={"Content-Type": "application/json"}, framing="json")

    def whole(self, raw: bytes) -> bytes:
        return msgspec.json.encode(chat_out.completion(self.ctx.model,
                                                       text=json.loads(raw)["answer"]))

    def feed(self, frame: bytes) -> list[bytes]:
        raise AssertionError("pics does not stream")

    def finish(self) -> list[bytes]:
        return []

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        return status, error_json(status, json.loads(raw).get("problem", "?"))

    def follow(self, raw: bytes) -> Outbound | None:
        return None


def _models(reach: Reach) -> Outbound:
    return Outbound("/pics/models", method="GET")


PICS = Adapter(name="pics", ops={CHAT: _Look}, sign=auth.signer("none"), models=_models,
               parse_models=lambda raw: json.loads(raw)["models"], inline_images=True)


async def _list(request: web.Request) -> web.Response:
    return web.json_response({"models": MODELS})


async def _look(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[SEEN].append(body)
    images = body["images"]
    for img in images:
        if not img.get("b64") or img.get("url"):
            return web.json_response({"problem": "images must be bytes"}, status=400)
        base64.b64decode(img["b64"], validate=True)
    return web.json_response({"answer": f"{len(images)} image(s): "
                                        + ",".join(i["type"] for i in images)})


def make_app() -> web.Application:
    app = web.Application()
    app[SEEN] = []
    app.router.add_get("/pics/models", _list)
    app.router.add_post("/pics/look", _look)
    return app
