"""Cluster management through the edge (issue 18): worker registration, heartbeats and
the pipeline calls relayed to --controller, so a worker anywhere joins over the edge's
TLS with an edge key (scope "register"), under the edge's rate limits.

The caller's edge key stays here; the controller gets --cluster-key. A registration
gets the client's name as `contributed_by` (what it said there itself is overwritten):
the controller shows who contributed each worker. Every relayed call names the client in
EDGE_CLIENT_HEADER (eldric.wire.cluster), so the controller refuses a client's heartbeat,
deregistration or registration again of a worker another client contributed. Paths the controller does not serve
(the pipeline ones, today) come back with its own 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from eldric import keys
from eldric.errors import EldricError, UpstreamFailure
from eldric.exchange import Answer
from eldric.http import read_body
from eldric.roles.edge.config import EdgeConfig
from eldric.roles.edge.scopes import admitted
from eldric.roles.edge.state import EDGE
from eldric.stream.forward import forward
from eldric.stream.target import Target
from eldric.wire.cluster import EDGE_CLIENT_HEADER

REGISTER = ("/api/v1/workers/register", "/api/v1/data-workers/register",
            "/api/v1/science-workers/register", "/api/v1/training-workers/register")
POSTS = (*REGISTER, "/api/v1/workers/{id}/heartbeat", "/api/v1/workers/{id}/deregister",
         "/api/v1/workers/discover", "/api/v1/pipeline/deploy", "/api/v1/pipeline/undeploy",
         "/api/v1/pipeline/rebalance")
GETS = ("/api/v1/pipeline/models", "/api/v1/pipeline/status")

CONTROLLER: web.AppKey[Target | None] = web.AppKey("eldric_edge_controller")


def contributed_by(name: str):  # type: ignore[no-untyped-def]
    """The body rewrite of a registration: the client's name in it. A body that is no
    JSON object goes as it is, for the controller to refuse in its own words."""

    def rewrite(body: bytes) -> bytes:
        try:
            data: Any = msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return body
        if not isinstance(data, dict):
            return body
        data["contributed_by"] = name
        return msgspec.json.encode(data)

    return rewrite


async def relay(request: web.Request) -> Answer:
    es = request.app[EDGE]
    client, headers = await admitted(request, es, "register")
    try:
        target = request.app[CONTROLLER]
        if target is None:
            raise EldricError("this edge relays no cluster calls: it was started without "
                              "--controller", status=503, code="no_controller")
        body = await read_body(request)
        rewrite = contributed_by(client.name) if request.path in REGISTER else None
        # Who calls, for the controller to refuse a beat or a deregistration of another
        # client's worker; as an extra header it also replaces one the caller sent.
        target = Target(target.state, target.base_url,
                        {**(target.headers or {}), EDGE_CLIENT_HEADER: quote(client.name)})
        try:
            return await forward(request, target, request.path, body, timeouts=es.timeouts,
                                 rewrite=rewrite, reply_headers=headers)
        except UpstreamFailure as exc:
            resp = exc.response()
            resp.headers.update(headers)
            return resp
    except EldricError as exc:
        exc.headers = {**headers, **exc.headers}
        raise


def install(app: web.Application, cfg: EdgeConfig) -> None:
    target = None
    if cfg.controller_url:
        url = cfg.controller_url.rstrip("/")
        up = app[keys.BUS].upstream(f"controller:{url}", url, role="edge-controller")
        target = Target(up, url, {"Authorization": f"Bearer {cfg.cluster_key}"}
                        if cfg.cluster_key else None)
    app[CONTROLLER] = target
    for path in POSTS:
        app.router.add_post(path, relay)
    for path in GETS:
        app.router.add_get(path, relay)
