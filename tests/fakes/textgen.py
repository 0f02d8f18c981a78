"""What the fakes of text-generation servers share (KServe/Triton generate, TGI's
native generate, the template's predict servers): knobs for failure tests, the request
log, the answer (the prompt's last user line, echoed as words) and an SSE writer that
can die mid-stream or notice the client leaving."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from aiohttp import web


class Knobs:
    def __init__(self) -> None:
        self.words = ["Rayleigh", " scattering", " makes", " it", " blue."]
        self.delay = 0.0  # seconds between streamed events
        self.die_after: int | None = None  # close the connection after N events
        self.fail_status: int | None = None  # answer inference requests with this status
        self.fail_body: bytes = b""
        self.error_after: int | None = None  # an in-stream error event after N events
        self.api_key: str | None = None  # when set, inference needs "Bearer <api_key>"
        self.requests: list[dict] = []
        self.disconnected = asyncio.Event()
        self.models = ["llama"]


KNOBS = web.AppKey("textgen_knobs", Knobs)


async def record(request: web.Request) -> tuple[Knobs, dict]:
    """The request logged and decoded; 401 without the key the knobs want."""
    knobs = request.app[KNOBS]
    raw = await request.read()
    knobs.requests.append({"path": request.path, "headers": dict(request.headers),
                           "body": json.loads(raw) if raw else None})
    if knobs.api_key and request.headers.get("Authorization") != f"Bearer {knobs.api_key}":
        raise web.HTTPUnauthorized(text='{"error": "unauthorized"}',
                                   content_type="application/json")
    return knobs, knobs.requests[-1]["body"] or {}


async def ok(request: web.Request) -> web.Response:
    """A health check's 200 with no body (Triton's, TGI's, MLServer's)."""
    return web.Response(status=200)


def failed(knobs: Knobs) -> web.Response | None:
    if knobs.fail_status:
        return web.Response(status=knobs.fail_status, body=knobs.fail_body,
                            content_type="application/json")
    return None


async def sse(request: web.Request, knobs: Knobs, events: list[bytes],
              error_event: bytes, sep: bytes = b"data: ") -> web.StreamResponse:
    """The events as SSE (``sep`` is the data field's prefix: Triton's ``data: ``,
    axum's (TGI's) ``data:``), with the knobs' failures."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await resp.prepare(request)
    try:
        for i, ev in enumerate(events):
            if knobs.die_after is not None and i == knobs.die_after:
                request.transport.close()  # the server dies mid-stream
                return resp
            if knobs.error_after is not None and i == knobs.error_after:
                await resp.write(sep + error_event + b"\n\n")
                return resp
            if knobs.delay:
                await asyncio.sleep(knobs.delay)
            await resp.write(sep + ev + b"\n\n")
    except (asyncio.CancelledError, ConnectionResetError):
        knobs.disconnected.set()
        raise
    return resp


def prompt_ok(prompt: object) -> str:
    """The prompt eldric sends (``Conversation.prompt()``): System/User/Assistant lines
    ending in ``Assistant:``."""
    assert isinstance(prompt, str) and prompt.endswith("\nAssistant:") or prompt == "Assistant:"
    return prompt


def wait_gone(knobs: Knobs) -> Callable[[], bool]:
    return knobs.disconnected.is_set


def now() -> int:
    return int(time.time())
