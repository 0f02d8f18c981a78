"""POST /api/v1/tunnel/{id}/response/{req_id}: the worker's reply, streamed up.

The head comes in the upload's own headers (STATUS_HEADER, HEADERS_HEADER), the body is
the upload's body, relayed chunk by chunk to the caller as it arrives (Chunks bounds
what waits). 200 once everything reached the caller; 409 tunnel_request_gone when the
caller left (or the request is unknown, or answered already): the worker stops it. A
head that is not one (400) ends the request it was for: its caller gets 502 at once.
"""

from __future__ import annotations

import asyncio

import msgspec
import structlog
from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import BadRequest, EldricError, UpstreamFailure
from eldric.roles.edge.scopes import scoped
from eldric.roles.edge.state import EDGE
from eldric.roles.edge.tunnel.registry import TUNNELS, Pending, RawPairs
from eldric.stream import client
from eldric.wire.tunnel import HEADERS_HEADER, STATUS_HEADER

log = structlog.get_logger("eldric.edge.tunnel")

_pairs = msgspec.json.Decoder(list[tuple[str, str]])


def request_gone(req_id: str) -> EldricError:
    return EldricError(f"request {req_id} is not waiting for a reply (its caller left, or "
                       "it was answered or never sent): stop it", status=409,
                       code="tunnel_request_gone")


def _head(request: web.Request) -> tuple[int, RawPairs]:
    try:
        status = int(request.headers.get(STATUS_HEADER, ""))
    except ValueError:
        status = 0
    if not 200 <= status <= 599:
        raise BadRequest(f"{STATUS_HEADER} must be the reply's status (200-599)",
                         param=STATUS_HEADER)
    try:
        pairs = _pairs.decode(request.headers.get(HEADERS_HEADER, "[]"))
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]
    except (msgspec.DecodeError, UnicodeEncodeError):
        raise BadRequest(f"{HEADERS_HEADER} must be a JSON list of [name, value] (latin-1)",
                         param=HEADERS_HEADER) from None
    if any(b"\r" in k + v or b"\n" in k + v for k, v in raw):
        raise BadRequest("a reply header holds a line break", param=HEADERS_HEADER)
    return status, raw


async def response(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    client_ = await scoped(request, es, "register")
    tunnel = request.app[TUNNELS].owned(request.match_info["id"], client_.name)
    req_id = request.match_info["req_id"]
    pending = tunnel.in_flight.get(req_id)
    waiting = pending is not None and pending.state == "sent" and not pending.head.done()
    try:
        head = _head(request)
    except BadRequest as exc:
        if waiting:  # its caller would wait for a head until the first-byte timeout
            pending.head.set_exception(UpstreamFailure.of(  # type: ignore[union-attr]
                tunnel.upstream.id, "closed", 502,
                f"the worker's reply had a malformed head: {exc.message}"))
        raise
    if not waiting:
        raise request_gone(req_id)
    pending.state = "uploading"
    pending.head.set_result(head)
    if not await _relay(request, pending, es.timeouts.idle):
        raise request_gone(req_id)
    return json_response({"id": req_id, "status": "relayed"})


async def _relay(request: web.Request, pending: Pending, idle: float) -> bool:
    """The upload's body to the caller; False when the caller left first."""
    chunks = pending.chunks
    try:
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await request.content.readany()
            except TimeoutError:
                raise client.ReplyTimeout("idle", idle) from None
            if not chunk:
                break
            if not await chunks.put(chunk):
                return False
    except asyncio.CancelledError:
        chunks.end(client.UpstreamClosed("the worker's upload was cancelled"))
        raise
    except client.ReplyTimeout as exc:
        chunks.end(exc)  # the caller's stream ends with the core's error event
        raise EldricError(f"the upload sent nothing for {idle:g}s", status=408,
                          code="body_timeout") from None
    except Exception as exc:  # the worker's connection broke off mid-upload
        log.warning("tunnel_upload_broken", request=pending.id, error=repr(exc))
        chunks.end(client.UpstreamClosed(f"the worker's upload broke off: {exc!r}"))
        raise EldricError("the upload broke off", status=400, code="upload_broken") from None
    chunks.end()
    return await chunks.relayed()
