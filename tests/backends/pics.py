"""A tiny native API that takes images as bytes only, for testing eldric's image
handling in eldric.backends.call (not shipped, no real server speaks it).

- ``GET /pics/models`` -> ``{"models": ["pic-1", "pic-see"]}``;
- ``POST /pics/embed``, ``POST /pics/rank``: its embeddings and its ranking (below);
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
from eldric.backends.table import CHAT, EMBEDDINGS, RERANK
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


class _Whole:
    """An op with one whole JSON reply (its embeddings, its ranking)."""

    stream = False
    path = ""

    def __init__(self, body: dict, ctx: Context) -> None:
        self.body, self.ctx = body, ctx
        self.done = False
        self.usage: tuple[int, int] | None = None

    def outbound(self) -> Outbound:
        return Outbound(self.path, msgspec.json.encode(self.native()), framing="json",
                        headers={"Content-Type": "application/json"})

    feed, finish, error, follow = _Look.feed, _Look.finish, _Look.error, _Look.follow


class _Embed(_Whole):
    """/v1/embeddings -> POST /pics/embed {"model", "texts"} -> {"vectors": [[…]], "n"}."""

    path = "/pics/embed"

    def native(self) -> dict:
        inp = self.body.get("input")
        return {"model": self.ctx.model, "texts": inp if isinstance(inp, list) else [inp]}

    def whole(self, raw: bytes) -> bytes:
        got = json.loads(raw)
        self.usage = (got["n"], 0)
        return msgspec.json.encode({"object": "list", "model": self.ctx.model, "data": [
            {"object": "embedding", "index": i, "embedding": v}
            for i, v in enumerate(got["vectors"])],
            "usage": {"prompt_tokens": got["n"], "total_tokens": got["n"]}})


class _Rank(_Whole):
    """/v1/rerank -> POST /pics/rank {"model", "q", "docs"} -> {"order": [i, …]}."""

    path = "/pics/rank"

    def native(self) -> dict:
        return {"model": self.ctx.model, "q": self.body.get("query"),
                "docs": self.body.get("documents")}

    def whole(self, raw: bytes) -> bytes:
        order = json.loads(raw)["order"]
        return msgspec.json.encode({"model": self.ctx.model, "results": [
            {"index": i, "relevance_score": 1 - k / len(order)} for k, i in enumerate(order)]})


def _models(reach: Reach) -> Outbound:
    return Outbound("/pics/models", method="GET")


PICS = Adapter(name="pics", ops={CHAT: _Look, EMBEDDINGS: _Embed, RERANK: _Rank}, sign=auth.signer("none"), models=_models,
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


async def _embed(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[SEEN].append(body)
    return web.json_response({"vectors": [[float(len(t)), 0.5] for t in body["texts"]],
                              "n": sum(len(t.split()) for t in body["texts"])})


async def _rank(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[SEEN].append(body)
    if not isinstance(body.get("q"), str):
        return web.json_response({"problem": "q is required"}, status=400)
    docs = body["docs"]
    return web.json_response({"order": sorted(range(len(docs)),
                                              key=lambda i: body["q"] not in docs[i])})


def make_app() -> web.Application:
    app = web.Application()
    app[SEEN] = []
    app.router.add_get("/pics/models", _list)
    app.router.add_post("/pics/look", _look)
    app.router.add_post("/pics/embed", _embed)
    app.router.add_post("/pics/rank", _rank)
    return app
