"""A tiny native API, only for testing eldric.backends.call (not shipped, no real
server speaks it): the smallest API with everything a native one has — its own request
shape, an auth header, a model list, a whole reply, an SSE stream with named events and
an in-stream error, its own error body. The adapter (TINY) translates with the shared
pieces every real adapter uses (chat_in.read, chat_out.completion / ChunkWriter); the
fake (make_app) asserts the request shape and the key, and is scripted by Knobs.

The API:
- ``GET /tiny/models`` -> ``{"models": [{"name": "tiny-1"}, …]}``;
- ``POST /tiny/generate`` ``{"model", "prompt", "max_new"?, "stream"}``, header
  ``Authorization: Bearer KEY``. Whole: ``{"output": str, "usage": {"in": n, "out": m}}``.
  Streamed (text/event-stream): ``event: token`` / ``data: {"text": str}`` per token,
  then ``event: end`` / ``data: {"usage": {...}}``; a failure mid-stream is
  ``event: error`` / ``data: {"message": str}``;
- ``POST /tiny/cancel``: stop the work of the request (the egress's optional
  ``cancel`` hook, sent when the client left; recorded in Knobs.cancels);
- errors: HTTP status with ``{"problem": str}``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from eldric.backends import auth
from eldric.backends.egress import Adapter, Context, Outbound
from eldric.errors import error_json
from eldric.wire.native import chat_in, chat_out

KEY = "tiny-key"
MODELS = ["tiny-1", "tiny-2"]
TOKENS = ["Hel", "lo", " from", " tiny"]


# ---------------------------------------------------------------- the adapter


class _Chat:
    def __init__(self, body: dict, ctx: Context) -> None:
        self.conv = chat_in.read(body, model=ctx.model)
        self.ctx = ctx
        self.stream = self.conv.stream
        self.done = False
        self.usage: tuple[int, int] | None = None
        self.out = chat_out.ChunkWriter(ctx.model, include_usage=self.conv.include_usage)

    def outbound(self) -> Outbound:
        prompt = str(self.ctx.options.get("prefix", "")) + self.conv.prompt()
        body = {"model": self.conv.model, "prompt": prompt, "stream": self.stream}
        if self.conv.sampling.max_tokens:
            body["max_new"] = self.conv.sampling.max_tokens
        return Outbound("/tiny/generate", msgspec.json.encode(body),
                        headers={"Accept": "text/event-stream" if self.stream
                                 else "application/json"},
                        framing="sse")

    def whole(self, raw: bytes) -> bytes:
        obj = json.loads(raw)
        if not isinstance(obj.get("output"), str):
            raise ValueError("no output")
        u = obj.get("usage") or {}
        self.usage = (u.get("in", 0), u.get("out", 0))
        return msgspec.json.encode(chat_out.completion(
            self.ctx.model, text=obj["output"], prompt_tokens=self.usage[0],
            completion_tokens=self.usage[1]))

    def feed(self, frame: bytes) -> list[bytes]:
        name, _, data = frame.partition(b"\n")
        obj = json.loads(data.removeprefix(b"data: "))
        event = name.removeprefix(b"event: ")
        if event == b"token":
            return self.out.text(obj["text"])
        if event == b"end":
            self.done = True
            self.usage = (obj["usage"]["in"], obj["usage"]["out"])
            return self.out.finish("stop")
        if event == b"error":
            self.done = True
            self.errored = True
            return [chat_out.error_event(502, obj["message"])]
        raise ValueError(f"unknown event {event!r}")

    def finish(self) -> list[bytes]:
        if getattr(self, "errored", False):
            return []
        return self.out.finish("stop") + self.out.end(self.usage)

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        problem = json.loads(raw)["problem"]
        return status, error_json(status, problem, code=f"tiny_{status}")

    def follow(self, raw: bytes) -> Outbound | None:
        return None

    def cancel(self) -> Outbound | None:
        """The optional hook of an API whose work outlives the connection: asked for
        with the option ``cancel`` (the fake records it)."""
        if not self.ctx.options.get("cancel"):
            return None
        return Outbound("/tiny/cancel", b'{"why": "client left"}')


TINY = Adapter(
    name="tiny", ops={"/v1/chat/completions": _Chat}, sign=auth.signer("bearer"),
    models=lambda r: Outbound("/tiny/models", method="GET"),
    parse_models=lambda raw: [m["name"] for m in json.loads(raw)["models"]])


# ---------------------------------------------------------------- the fake server

KNOBS = web.AppKey("knobs", object)


@dataclass
class Knobs:
    # what the next requests get: "ok", an HTTP status (429, 500, 400), "cut" (two
    # tokens, then the connection closed), "hang" (a token every 50 ms until eldric
    # closes the connection), "error_event" (a token, then the API's error event), "garbage" (a
    # 200 that is not the API's JSON), "empty" (a 200 stream head, then the body ends
    # before any event), "stall" (a whole reply that never comes: it waits until eldric
    # closes the connection, then sets `cancelled`)
    scenario: object = "ok"
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    cancels: list[dict] = field(default_factory=list)  # POST /tiny/cancel bodies
    retry_after: str | None = None  # sent with a scripted error status


def make_app(knobs: Knobs | None = None) -> web.Application:
    app = web.Application()
    app[KNOBS] = knobs or Knobs()
    app.router.add_get("/tiny/models", _models)
    app.router.add_post("/tiny/generate", _generate)
    app.router.add_post("/tiny/cancel", _cancel)
    return app


async def _cancel(request: web.Request) -> web.Response:
    if (bad := _refused(request)) is not None:
        return bad
    request.app[KNOBS].cancels.append(await request.json())
    return web.json_response({"cancelled": True})


def _refused(request: web.Request) -> web.Response | None:
    if request.headers.get("Authorization") != f"Bearer {KEY}":
        return web.json_response({"problem": "bad key"}, status=401)
    return None


async def _models(request: web.Request) -> web.Response:
    return _refused(request) or web.json_response({"models": [{"name": m} for m in MODELS]})


async def _generate(request: web.Request) -> web.StreamResponse:
    knobs: Knobs = request.app[KNOBS]
    if (bad := _refused(request)) is not None:
        return bad
    body = await request.json()
    knobs.requests.append(body)
    knobs.headers.append(dict(request.headers))
    assert set(body) <= {"model", "prompt", "max_new", "stream"}, body
    assert isinstance(body["prompt"], str) and body["prompt"].endswith("Assistant:")
    assert body["model"] in MODELS, body
    s = knobs.scenario
    if isinstance(s, int):
        return web.json_response({"problem": f"scripted {s}"}, status=s, headers={
            "Retry-After": knobs.retry_after} if knobs.retry_after else None)
    if s == "garbage":
        return web.Response(text="<html>proxy</html>", content_type="application/json")
    if s == "stall":
        try:  # the test server cancels a handler whose client (eldric) left
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            knobs.cancelled.set()
            raise
        return web.json_response({"problem": "stalled"}, status=500)
    if not body["stream"]:
        return web.json_response({"output": "".join(TOKENS), "usage": {"in": 7, "out": 4}})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)

    async def token(text: str) -> None:
        await resp.write(b'event: token\ndata: ' + json.dumps({"text": text}).encode()
                         + b"\n\n")
    try:
        if s == "empty":
            pass
        elif s == "hang":  # a token every 50 ms until the writes fail: eldric left
            for _ in range(600):
                await token(".")
                await asyncio.sleep(0.05)
        elif s == "cut":
            await token(TOKENS[0])
            await token(TOKENS[1])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()
            return resp
        elif s == "error_event":
            await token(TOKENS[0])
            await resp.write(b'event: error\ndata: {"message": "overloaded mid-way"}\n\n')
        else:
            for t in TOKENS:
                await token(t)
            await resp.write(b'event: end\ndata: {"usage": {"in": 7, "out": 4}}\n\n')
    except (asyncio.CancelledError, ConnectionResetError):
        knobs.cancelled.set()
        raise
    await resp.write_eof()
    return resp
