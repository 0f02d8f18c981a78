"""forward(): send one request upstream and relay the reply to the client, byte for byte.

Every relaying hop (worker, router, edge, cloud) calls this one function. It never parses
the reply: chunks are written to the client as they arrive. What it guarantees:

- before any byte reached the client, an upstream failure (connection error, connect or
  first-byte timeout, 5xx) raises ``UpstreamFailure(retryable=True)``, so the caller may
  try another upstream; a 4xx is relayed (normalised to the OpenAI error shape);
- after the first byte, a failure ends an SSE reply with one ``data: {"error": …}`` event
  and a clean close (a non-SSE reply is cut, so the client sees it incomplete);
- the client going away cancels the upstream request at once (its connection is closed,
  so the backend stops generating), and the bus counts it;
- timeouts: connect, first byte, and idle between chunks; never a total one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from aiohttp import web

from eldric import keys
from eldric.bus import Bus, UpstreamState
from eldric.errors import error_json
from eldric.serve.reply import Reply, Streamed
from eldric.serve.request import FastRequest, FastSink
from eldric.stream import client
from eldric.stream.headers import downstream_headers, upstream_header_block
from eldric.stream.sse import EventFilter, EventSplitter, Tap, error_event
from eldric.stream.upstream_errors import message_of, normalise

log = structlog.get_logger("eldric.stream")

# Replies up to this size with a Content-Length are read whole and sent in one write: one
# syscall instead of three, and an upstream dying mid-body stays retryable.
_WHOLE_BODY_LIMIT = 256 * 1024
# An error body from upstream is read up to this much, then cut.
_ERROR_BODY_LIMIT = 64 * 1024
# Headers of an upstream's error reply that do not fit its normalised body.
_REENCODED = frozenset(("content-type", "content-encoding"))


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 300.0
    idle: float = 120.0

    @classmethod
    def from_config(cls, cfg: object) -> Timeouts:
        return cls(connect=cfg.connect_timeout_ms / 1000,  # type: ignore[attr-defined]
                   first_byte=cfg.first_byte_timeout_ms / 1000,  # type: ignore[attr-defined]
                   idle=cfg.idle_timeout_ms / 1000)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send: the upstream's bus state, its base URL and the headers it needs."""

    state: UpstreamState
    base_url: str  # without trailing slash, e.g. http://127.0.0.1:11434
    headers: Mapping[str, str] | None = None  # e.g. the upstream's Authorization


# Statuses that say "not here" rather than "broken": the upstream does not implement the
# path (llama.cpp's 501 for embeddings that are off) or the method. Another upstream may
# serve it, so they are worth a retry elsewhere, but they never count against the
# upstream's health, and when nobody serves it the client gets this status, not a 503.
NOT_HERE = frozenset((405, 501))
# Asking again will not help: the OpenAI and Anthropic SDKs honour this and do not retry
# (they retry every other 5xx twice).
NOT_HERE_HEADERS = {"X-Should-Retry": "false"}


class UpstreamFailure(Exception):
    """The upstream failed before any byte reached the client."""

    def __init__(self, upstream: str, kind: str, status: int, error_body: bytes):
        if kind == "status" and status in NOT_HERE:
            kind = "unsupported"
        self.upstream = upstream
        self.kind = kind  # connect | timeout | closed | status | unsupported
        self.status = status  # what the client gets if nobody retries
        self.error_body = error_body  # OpenAI-shaped JSON
        self.retryable = kind != "status" or status >= 500 or status == 429
        self.message = message_of(error_body)
        # The upstream's own reply headers worth keeping when this is relayed (its
        # Retry-After, a router's X-Eldric-*); the body is re-encoded JSON, so not its
        # Content-Type or Content-Encoding.
        self.headers: list[tuple[str, str]] = []
        super().__init__(f"{upstream}: {self.message}")

    @classmethod
    def of(cls, upstream: str, kind: str, status: int, message: str) -> UpstreamFailure:
        """A failure with eldric's own message: connect (no connection: refused,
        unreachable, connect timeout), timeout (no reply in time), closed (the reply
        broke off or was not HTTP)."""
        code = "upstream_timeout" if status == 504 else (
            "upstream_unavailable" if kind == "connect" else "upstream_error")
        return cls(upstream, kind, status, error_json(status, message, code=code))

    def mark_down(self, bus: Bus, state: UpstreamState) -> None:
        """Passive health: an upstream that cannot be connected to is out at once. Nothing
        else marks it down here: a slow reply, a broken one or an error status can be
        caused by the request itself (a huge prompt, an input the backend chokes on), and
        a client's request must never take a healthy upstream out of rotation; the
        caller has them confirmed by a health check (the router's passive_mark, the
        edge's Routers.confirm)."""
        if self.kind == "connect":
            bus.mark(state, False, self.message)

    def response(self) -> web.Response:
        resp = web.Response(status=self.status, body=self.error_body,
                            content_type="application/json")
        resp.headers.extend(self.headers)
        if self.kind == "unsupported":
            resp.headers.update(NOT_HERE_HEADERS)
        return resp


def _failure(up: UpstreamState, kind: str, status: int, message: str) -> UpstreamFailure:
    return UpstreamFailure.of(up.id, kind, status, message)


async def forward(request: web.Request, target: Target, path: str, body: bytes, *,
                  timeouts: Timeouts, rewrite: Callable[[bytes], bytes] | None = None,
                  tap: Tap | None = None, method: str | None = None,
                  query: str | None = None,
                  reply_headers: Mapping[str, str] | None = None,
                  drop: Callable[[bytes], bool] | None = None
                  ) -> web.StreamResponse | Reply | Streamed:
    """Relay `body` to target+path and stream the reply back to the client.

    On the fast lane (a FastRequest) a whole reply comes back as a Reply and a streamed
    one, once sent, as Streamed; on aiohttp as web.Response / web.StreamResponse.

    ``rewrite`` (optional) returns the body to send instead; ``tap`` (optional) is called
    with every complete SSE event of the reply, read-only; ``reply_headers`` are added to
    the reply (route decisions); ``drop`` (optional) removes the SSE events it selects
    (a usage chunk the client did not ask for). Raises UpstreamFailure while nothing has
    been sent to the client.
    """
    app = request.app
    bus = app[keys.BUS]
    hop = request[keys.HOP]
    up = target.state
    hop.upstream = up.id
    if rewrite is not None:
        body = rewrite(body)
    qs = request.query_string if query is None else query
    path_qs = f"{path}?{qs}" if qs else path
    header_block = upstream_header_block(request.raw_headers, hop.request_id, target.headers)
    t0 = time.perf_counter()
    bus.request_started(up)
    outcome = "error"
    first_at: float | None = None  # perf_counter() when the first byte went to the client
    upstream_resp: client.Response | None = None
    try:
        try:
            upstream_resp = await app[keys.UPSTREAM].request(
                method or request.method, target.base_url, path_qs, header_block, body,
                connect_timeout=timeouts.connect, first_byte_timeout=timeouts.first_byte,
                idle_timeout=timeouts.idle)
        except client.ConnectTimeout:
            raise _failure(up, "connect", 504,
                           f"upstream {up.id} did not accept a connection within "
                           f"{timeouts.connect:g}s (connect timeout)") from None
        except client.UpstreamTimeout as exc:
            raise _failure(up, "timeout", 504,
                           f"upstream {up.id} gave no reply: {exc}") from None
        except OSError as exc:  # refused, reset, closed, unreachable, TLS, not HTTP
            raise _failure(up, "connect", 503,
                           f"upstream {up.id} ({target.base_url}) is unreachable: "
                           f"{_describe(exc)}") from None

        status = upstream_resp.status
        if status >= 400:
            raw = await _read_bounded(upstream_resp, _ERROR_BODY_LIMIT)
            failure = UpstreamFailure(up.id, "status", status, normalise(status, raw, up.id))
            failure.headers = [(k, v) for k, v in downstream_headers(upstream_resp.headers)
                               if k.lower() not in _REENCODED]
            if failure.kind == "unsupported":
                outcome = "unsupported"  # not the upstream's failure: never counted
            if failure.retryable:
                raise failure
            outcome = "client_error"
            first_at = time.perf_counter()
            resp = failure.response()
            if reply_headers:
                resp.headers.update(reply_headers)
            return resp

        out_headers = downstream_headers(upstream_resp.headers)
        if reply_headers:
            out_headers.extend(reply_headers.items())
        length = upstream_resp.content_length
        is_sse = upstream_resp.content_type == "text/event-stream"
        if not is_sse and length is not None and length <= _WHOLE_BODY_LIMIT:
            try:
                data = await upstream_resp.read_all()
            except OSError as exc:  # UpstreamTimeout is one too
                timed_out = isinstance(exc, TimeoutError)
                raise _failure(up, "timeout" if timed_out else "closed",
                               504 if timed_out else 502,
                               f"upstream {up.id} failed while sending its reply: "
                               f"{_describe(exc)}") from None
            first_at = time.perf_counter()
            outcome = "ok"
            if type(request) is FastRequest:
                return Reply(status, out_headers, data)
            return web.Response(status=status, body=data, headers=out_headers)

        out_headers.append(("X-Request-ID", hop.request_id))
        sink = (request.stream(status, out_headers, length) if type(request) is FastRequest
                else _AioSink(request, status, out_headers, length))
        splitter = EventSplitter(tap) if tap is not None and is_sse else None
        filt = EventFilter(drop) if drop is not None and is_sse else None
        outcome, first_at = await _relay(request, sink, upstream_resp, up, is_sse, splitter,
                                         filt)
        return sink.result
    except asyncio.CancelledError:
        outcome = "cancelled"
        _client_left(request, up)
        raise
    finally:
        if upstream_resp is not None:
            if outcome in ("ok", "client_error", "unsupported"):
                upstream_resp.release()  # kept alive only if the reply was read whole
            else:
                upstream_resp.close()  # closes the connection: the backend stops at once
        if first_at is not None:
            hop.ttfb = first_at - hop.started
        ok = outcome == "ok"
        bus.request_finished(up, outcome,
                             ttfb=first_at - t0 if ok and first_at is not None else None,
                             latency=time.perf_counter() - t0 if ok else None)


class _AioSink:
    """A streamed reply on an aiohttp connection; FastSink is the fast lane's twin."""

    __slots__ = ("request", "result")

    def __init__(self, request: web.Request, status: int, headers: list[tuple[str, str]],
                 length: int | None) -> None:
        self.request = request
        self.result = web.StreamResponse(status=status, headers=headers)
        if length is not None:
            self.result.content_length = length

    async def start(self) -> None:
        await self.result.prepare(self.request)

    async def write(self, chunk: bytes) -> None:
        await self.result.write(chunk)

    async def end(self) -> None:
        await self.result.write_eof()

    def abort(self) -> None:
        if self.request.transport is not None:
            self.request.transport.close()


async def _relay(request: web.Request, resp: _AioSink | FastSink,
                 upstream_resp: client.Response, up: UpstreamState, is_sse: bool,
                 splitter: EventSplitter | None,
                 filt: EventFilter | None = None) -> tuple[str, float | None]:
    """Write the reply chunk by chunk as it arrives. Returns (outcome, first byte time).

    The upstream connection's own timer bounds the wait for the first chunk (first-byte
    timeout) and every silence after it (idle timeout); there is no total timeout."""
    first_at: float | None = None
    prepared = False
    try:
        while True:
            chunk = await upstream_resp.read_chunk()
            if not chunk:
                break
            if not prepared:
                await resp.start()
                prepared = True
                first_at = time.perf_counter()
            if splitter is not None:
                splitter.feed(chunk)
            if filt is not None:
                chunk = filt.feed(chunk)
                if not chunk:
                    continue
            await resp.write(chunk)
    except (client.UpstreamTimeout, client.UpstreamClosed, client.ProtocolError) as exc:
        timed_out = isinstance(exc, TimeoutError)
        message = f"upstream {up.id} failed mid-reply: {_describe(exc)}"
        if not prepared:
            raise _failure(up, "timeout" if timed_out else "closed", 504 if timed_out else 502,
                           message) from None
        log.warning("upstream_failed_mid_stream", upstream=up.id, error=str(exc))
        if is_sse:
            code = "upstream_timeout" if timed_out else "upstream_error"
            await resp.write(error_event(error_json(502, message, code=code)))
            await resp.end()
        else:
            # A JSON reply cut in the middle cannot be mended: drop the connection so the
            # client sees it incomplete rather than a truncated body that looks whole.
            resp.abort()
        return "error", first_at
    except ConnectionError:  # the client's side: it went away
        _client_left(request, up)
        return "cancelled", first_at
    if splitter is not None:
        splitter.close()
    rest = filt.close() if filt is not None else b""  # an event the filter held back
    if not prepared:  # an empty body, or all of it held by the filter
        await resp.start()
        first_at = time.perf_counter()
    if rest:
        await resp.write(rest)
    await resp.end()
    return "ok", first_at


def _client_left(request: web.Request, up: UpstreamState) -> None:
    hop = request[keys.HOP]
    request.app[keys.BUS].metrics.disconnects.labels(hop.role).inc()
    log.info("client_disconnected", upstream=up.id)


async def _read_bounded(resp: client.Response, limit: int) -> bytes:
    """An error body, cut at `limit` (the connection's timer bounds the wait)."""
    parts: list[bytes] = []
    size = 0
    try:
        while size < limit and (chunk := await resp.read_chunk()):
            parts.append(chunk)
            size += len(chunk)
    except OSError:
        pass
    return b"".join(parts)[:limit]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def with_fields(**fields: object) -> Callable[[bytes], bytes]:
    """A body rewrite that sets top-level fields (e.g. a fallback model, stream_options).

    It decodes and re-encodes the body, so a caller uses it only when it must change it.
    """
    import msgspec

    def rewrite(body: bytes) -> bytes:
        data = msgspec.json.decode(body)
        data.update(fields)
        return msgspec.json.encode(data)

    return rewrite


__all__ = ["Target", "Timeouts", "UpstreamFailure", "forward", "with_fields"]
