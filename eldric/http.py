"""What every role's aiohttp app shares: the request middleware and error rendering.

One middleware does it all (an extra middleware is an extra await per request): request
id, error rendering, one access-log line, request metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from eldric import keys
from eldric import log as eldric_log
from eldric.context import Hop
from eldric.errors import EldricError, UpstreamFailure, error_json
from eldric.exchange import AIOHTTP, Lane, LaneRequest
from eldric.wire import dialect

log = structlog.get_logger("eldric.access")

# An incoming X-Request-ID is kept only if it is a sane token (it goes into every log line).
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# Generated ids: a random per-process prefix and a counter. As unique as uuid4 for tracing
# purposes, at a fraction of its cost on every request.
_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count(1)


def _request_id(request: LaneRequest) -> str:
    rid = request.headers.get("X-Request-ID")
    if rid and _GOOD_ID.match(rid):
        return rid
    return f"{_ID_PREFIX}{next(_ids):08x}"


# Polled every few seconds by routers, edges, controllers and Prometheus: logged at debug.
QUIET_PATHS = frozenset({"/health", "/api/v1/health", "/metrics"})


def _quiet(request: LaneRequest, lane: Lane) -> bool:
    """A health or metrics scrape, or eldric's own polling: logged at debug, not traced
    (a router polls each worker every few seconds; as spans they would bury the clients'
    traces)."""
    if lane.fast:
        # The lane takes only the inference POSTs: clients' requests (a hop relays the
        # client's own headers), so the hot path pays no header lookup for this.
        return False
    path = request.path
    if path in QUIET_PATHS:
        return True
    # A User-Agent is the client's to choose: it quiets only what eldric itself polls (the
    # control plane and model lists), never a request relayed upstream, so no client can
    # keep its inference requests out of the log by calling itself eldric.
    if path.startswith("/api/v1/") or path == "/v1/models":
        agent = request.headers.get("User-Agent")
        return agent is not None and agent.startswith(eldric_log.USER_AGENT_PREFIX)
    return False


def _access_writer(request: LaneRequest, lane: Lane):  # type: ignore[no-untyped-def]
    """Where this request's access line goes: info for clients' requests, debug for
    health and metrics scrapes and for eldric's own requests (its User-Agent)."""
    return eldric_log.access_debug if _quiet(request, lane) else eldric_log.access_line


@web.middleware
async def middleware(request: LaneRequest, handler, lane: Lane = AIOHTTP):  # type: ignore[no-untyped-def]
    """aiohttp calls it with a web.Request (its lane: the default); the fast lane with a
    FastRequest and its own Lane. The one place the lane is known; it is kept on the Hop."""
    info = request.app[keys.ROLE]
    hop = request[keys.HOP] = Hop(request_id=_request_id(request), role=info.name,
                                  started=time.perf_counter(), lane=lane)
    metrics = request.app[keys.BUS].metrics
    if info.tracer is not None and not _quiet(request, lane):  # off: this one read
        from eldric.trace import otel
        hop.span = otel.start(info.tracer, request, hop)
    info.active += 1
    # Every log line made while this request is handled carries its id.
    token = eldric_log.REQUEST_ID.set(hop.request_id)
    status = 500
    try:
        try:
            resp = await handler(request)
        except EldricError as exc:
            resp = _error_response(exc.status, exc.body(), exc.headers)
        except UpstreamFailure as exc:
            resp = exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect: aiohttp sends it as it is
                status = exc.status
                raise
            resp = _http_exception(exc)
        except asyncio.CancelledError:
            status = 499  # nginx's "client closed request", for the log and metrics
            raise
        except Exception:
            log.exception("unhandled_error", path=request.path)
            resp = _error_response(500, error_json(500, "internal error in eldric; see its log "
                                                   f"(request id {hop.request_id})",
                                                   code="internal_error"))
        status = resp.status
        if not resp.prepared:  # forward()'s replies (Reply, streamed) carry it already
            resp.headers["X-Request-ID"] = hop.request_id
            if status >= 400:  # eldric's errors and those it relays, in the path's dialect
                _in_dialect(request.path, resp)
        return resp
    finally:
        info.active -= 1
        eldric_log.REQUEST_ID.reset(token)
        _finish(request, hop, status, metrics)


def _finish(request: LaneRequest, hop: Hop, status: int, metrics) -> None:  # type: ignore[no-untyped-def]
    duration = time.perf_counter() - hop.started
    if hop.ttfb is None and hop.upstream is not None:
        hop.ttfb = duration  # a whole reply returned to aiohttp goes out right after this
    route = hop.lane.route(request)
    model = metrics.model_label(hop.model)
    metrics.requests.labels(hop.role, route, str(status), model).inc()
    metrics.duration.labels(hop.role, route).observe(duration)
    if hop.ttfb is not None:
        metrics.ttfb.labels(hop.role, route).observe(hop.ttfb)
    line = _access_writer(request, hop.lane)
    if line is not eldric_log.no_access:
        line({"request_id": hop.request_id, "role": hop.role, "method": request.method,
              "path": request.path, "model": hop.model, "upstream": hop.upstream,
              "status": status, "duration_ms": round(duration * 1000, 3),
              "ttfb_ms": None if hop.ttfb is None else round(hop.ttfb * 1000, 3)})
    if hop.span is not None:
        from eldric.trace import otel
        otel.end(request, hop, status)


def _in_dialect(path: str, resp: web.StreamResponse) -> None:
    """Put an (OpenAI-shaped) error reply in the shape of the client's API: Anthropic's
    on /v1/messages, Ollama's on /api/* (eldric.wire.dialect)."""
    d = dialect.of_path(path)
    if d is not dialect.OPENAI and isinstance(resp, web.Response) \
            and isinstance(resp.body, bytes):
        resp.body = d.from_openai(resp.status, resp.body)


def _error_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, headers=headers,
                        content_type="application/json")


def _http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own errors (unknown route, wrong method, body too large) as OpenAI errors."""
    status = exc.status
    if status == 404:
        message, code = "no such route", "not_found"
    elif status == 413:
        message, code = exc.text or "request body too large", "request_too_large"
    else:
        message, code = exc.reason, None
    headers = {k: v for k, v in exc.headers.items()
               if k.lower() in ("allow", "retry-after")}
    return _error_response(status, error_json(status, message, code=code), headers)


async def read_body(request: LaneRequest) -> bytes:
    """The whole request body, within the role's body timeout and size limit.

    A client that trickles its body (slow loris) gets 408; one over the limit gets 413.
    """
    if request[keys.HOP].lane.fast:
        return request.body  # type: ignore[attr-defined]  # the lane read it whole, within the same limits
    assert isinstance(request, web.Request)
    if request.content.is_eof():  # all of it is here already (the usual small body)
        return await request.read()
    cfg = request.app[keys.CONFIG]
    try:
        async with asyncio.timeout(cfg.body_timeout_ms / 1000):
            return await request.read()
    except TimeoutError:
        raise body_timeout(cfg.body_timeout_ms) from None
    except HttpProcessingError as exc:  # a chunked body that is not (aiohttp_glue)
        reason = (exc.message or "bad body").split("\n", 1)[0].rstrip(": ")
        raise EldricError(f"malformed HTTP request: {reason}", status=400,
                          code="bad_http_request") from None


def body_timeout(ms: int) -> EldricError:
    """The 408 for a body that did not arrive in time (on either lane)."""
    return EldricError(f"the request body did not arrive within {ms} ms", status=408,
                       code="body_timeout")
