"""/api/v1/tunnel/{id}/forward…: a router (key scope "cluster") calling a tunnelled
worker. The edge is the worker's address: what comes back is the worker's reply, as
forward() relays any upstream's (eldric.roles.edge.tunnel.upstream)."""

from __future__ import annotations

import base64
import binascii

import msgspec
from aiohttp import web

from eldric import keys, trace
from eldric.errors import BadRequest, UpstreamFailure
from eldric.exchange import Answer
from eldric.http import read_body
from eldric.roles.edge.scopes import scoped
from eldric.roles.edge.state import EDGE
from eldric.roles.edge.tunnel.registry import TUNNELS, gone
from eldric.roles.edge.tunnel.upstream import TunnelUpstream
from eldric.stream.forward import forward
from eldric.stream.target import Target
from eldric.wire.head import decode_head


class Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """POST …/forward's JSON body: the call to make on the worker (a TunnelRequest
    without its id, which the edge gives it)."""

    method: str
    path: str
    headers: list[tuple[str, str]] = []
    body: str = ""  # base64


async def raw(request: web.Request) -> Answer:
    """…/forward/{path}: the method, headers, query and body as they came."""
    await scoped(request, request.app[EDGE], "cluster")
    return await _forward(request, request.method, "/" + request.match_info["tail"],
                          request.query_string, await read_body(request), None)


async def envelope(request: web.Request) -> Answer:
    await scoped(request, request.app[EDGE], "cluster")
    env = decode_head(await read_body(request), Envelope)
    if not env.path.startswith("/"):
        raise BadRequest("path must start with /", param="path")
    if not env.method.isalpha() or not env.method.isupper():
        raise BadRequest("method must be an HTTP method (GET, POST, …)", param="method")
    try:
        body = base64.b64decode(env.body, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("body must be base64", param="body") from None
    for name, value in env.headers:
        if "\r" in name + value or "\n" in name + value or not (name + value).isascii():
            raise BadRequest("headers must be ASCII, without line breaks", param="headers")
    return await _forward(request, env.method, env.path, "", body, env.headers)


async def _forward(request: web.Request, method: str, path: str, query: str, body: bytes,
                   headers: list[tuple[str, str]] | None) -> Answer:
    es = request.app[EDGE]
    tunnels = request.app[TUNNELS]
    tunnel = tunnels.by_id.get(request.match_info["id"])
    if tunnel is None:  # (yet) unknown here: a router fails over, as from a worker down
        return gone(request.match_info["id"], "is not connected to this edge").response()
    hop = request[keys.HOP]
    hop.upstream = tunnel.upstream.id
    target = Target(tunnel.upstream, tunnel.upstream.url)
    # traced: the call over the tunnel is a span holding the attempt's CLIENT span
    # (off: NULL, no attributes built)
    span = trace.NULL if hop.span is None else trace.child(hop, "eldric.tunnel.forward", {
        "eldric.tunnel.id": tunnel.id, "eldric.tunnel.queued": len(tunnel.queue)})
    try:
        with span:
            return await forward(request, target, path, body, timeouts=es.timeouts,
                                 method=method, query=query, span=span,
                                 upstream=TunnelUpstream(tunnels, tunnel, headers,
                                                         traced=hop.span is not None))
    except UpstreamFailure as exc:
        return exc.response()
