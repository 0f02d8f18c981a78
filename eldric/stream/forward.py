"""forward(): send one request upstream and relay the reply to the client, byte for byte.

Every relaying hop (worker, router, edge, cloud) calls this one function. It never parses
the reply: chunks are written to the client as they arrive. What it guarantees:

- before any byte reached the client, an upstream failure (connection error, connect or
  first-byte timeout, 5xx) raises ``UpstreamFailure(retryable=True)``, so the caller may
  try another upstream; a 4xx is relayed (normalised to the OpenAI error shape);
- after the first byte, a failure ends a stream with one error event in the client API's
  shape (eldric.wire.dialect; a translator's own) and a clean close (a whole reply is
  cut, so the client sees it incomplete);
- ``translate=`` turns a 2xx reply into the client's API (eldric.wire.translate); off,
  the bytes pass as they came;
- the client going away cancels the upstream request at once (its connection is closed,
  so the backend stops generating), and the bus counts it;
- timeouts: connect, first byte, and idle between chunks; never a total one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog

from eldric import keys
from eldric.bus import Bus, UpstreamState
from eldric.context import Hop
from eldric.errors import UpstreamFailure
from eldric.exchange import Answer, LaneRequest, Sink, encode_headers, text_headers
from eldric.stream import client
from eldric.stream.headers import downstream_headers, upstream_header_block
from eldric.stream.sse import (LINE_END, EventFilter, EventSplitter, Tap, Translating,
                               made_whole)
from eldric.stream.target import REPLY_ERRORS, Target, Timeouts, upstream_failure, with_fields
from eldric.stream.upstream_errors import normalise
from eldric.wire import dialect
from eldric.wire.translate import Translator

log = structlog.get_logger("eldric.stream")

# Replies up to this size with a Content-Length are read whole and sent in one write: one
# syscall instead of three, and an upstream dying mid-body stays retryable.
_WHOLE_BODY_LIMIT = 256 * 1024
# An error body from upstream is read up to this much, then cut.
_ERROR_BODY_LIMIT = 64 * 1024
# Headers of an upstream's error reply that do not fit its normalised body.
_REENCODED = frozenset((b"content-type", b"content-encoding"))
# Replies that have no body whatever their headers say (RFC 9110 §15.3.5, §15.4.5): whole,
# never framed as a stream.
_BODILESS = frozenset((204, 304))


class Opener(Protocol):
    """What sends a request upstream and returns its reply once the head is here: the
    connection pool (eldric.stream.pool), or one that looks like it."""

    async def request(self, method: str, base_url: str, target: str, header_block: bytes,
                      body: bytes, *, connect_timeout: float, first_byte_timeout: float,
                      idle_timeout: float) -> client.Response: ...
async def forward(request: LaneRequest, target: Target, path: str, body: bytes, *,
                  timeouts: Timeouts, rewrite: Callable[[bytes], bytes] | None = None,
                  tap: Tap | None = None, method: str | None = None,
                  query: str | None = None,
                  reply_headers: Mapping[str, str] | None = None,
                  drop: Callable[[bytes], bool] | None = None,
                  translate: Translator | None = None,
                  upstream: Opener | None = None, span: Any = None) -> Answer:
    """Relay `body` to target+path and stream the reply back to the client.

    Returns what the request's lane sends (eldric.exchange.Lane): on the fast lane a
    Reply, or Streamed once a streamed reply is out; on aiohttp a web.Response or
    web.StreamResponse. ``rewrite`` returns the body to send instead; ``tap`` is called
    with every complete SSE event of the reply (or line of an NDJSON one), read-only;
    ``reply_headers`` are added to the reply (route decisions); ``drop`` removes the SSE
    events it selects (a usage chunk the client did not ask for); ``translate`` turns a
    2xx reply into the client's API (eldric.wire.translate: `body` is then already the
    translated request); ``upstream`` opens the request instead of the connection pool
    (the edge's tunnels: eldric.roles.edge.tunnel.upstream); ``span`` is the span this
    attempt belongs to when the caller made one (eldric.trace.child: a retry's), else
    the hop's. Raises UpstreamFailure while nothing has been sent.

    A traced request (hop.span set) gets one CLIENT span per call, i.e. per attempt,
    and the upstream request carries a traceparent naming it; untraced, the client's
    own headers (its traceparent too) go on as they came.
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
    extra = target.headers
    attempt = translating = None
    if hop.span is not None:
        from eldric.trace import otel
        if translate is not None:  # its eldric.translate span holds the attempt's
            span = translating = otel.translating(hop.span, span, request.path, path,
                                                  translate.model)
        attempt, extra = otel.outgoing(hop.span, span, method or request.method,
                                       target.base_url, path, extra)
        if reply_headers:  # this hop's route decision (the router's reason)
            otel.decided(hop.span, reply_headers)
    header_block = upstream_header_block(request.raw_headers, hop.request_id, extra)
    t0 = time.perf_counter()
    bus.request_started(up)
    outcome = "error"
    first_at: float | None = None  # perf_counter() when the first byte went to the client
    upstream_resp: client.Response | None = None
    try:
        try:  # open the upstream: send the request, wait for the reply's head
            upstream_resp = await (upstream or app[keys.UPSTREAM]).request(
                method or request.method, target.base_url, path_qs, header_block, body,
                connect_timeout=timeouts.connect, first_byte_timeout=timeouts.first_byte,
                idle_timeout=timeouts.idle)
        except OSError as exc:  # ReplyTimeout and ConnectTimeout are ones too
            raise upstream_failure(exc, target, timeouts, "open") from None
        outcome, first_at, result = await _answer(request, hop, upstream_resp, target,
                                                  timeouts, reply_headers, tap, drop,
                                                  translate, path)
        return result
    except UpstreamFailure as exc:
        if exc.kind == "unsupported":
            outcome = "unsupported"  # "not here" (501/405) is not the upstream's failure
        raise
    except asyncio.CancelledError:
        outcome = "cancelled"
        _client_left(request, up)
        raise
    finally:
        _settle(bus, hop, up, upstream_resp, outcome, first_at, t0)
        if attempt is not None:
            otel.settle(attempt, None if upstream_resp is None else upstream_resp.status, outcome)
            if translating is not None:
                otel.settle(translating.span, None, outcome)


async def _answer(request: LaneRequest, hop: Hop, upstream_resp: client.Response,
                  target: Target, timeouts: Timeouts, reply_headers: Mapping[str, str] | None,
                  tap: Tap | None, drop: Callable[[bytes], bool] | None,
                  translate: Translator | None,
                  path: str) -> tuple[str, float | None, Answer]:
    """The reply, once its head is here: (outcome, first byte time, what to return)."""
    status = upstream_resp.status
    hop.reply_head = upstream_resp.headers
    if status >= 400:
        failure = await _refusal(upstream_resp, target.state)
        if failure.retryable:
            raise failure
        resp = failure.response()
        if reply_headers:
            resp.headers.update(reply_headers)
        return "client_error", time.perf_counter(), resp
    out_headers = downstream_headers(upstream_resp.headers)
    if reply_headers:
        out_headers.extend(encode_headers(reply_headers))
    out_headers.append((b"X-Request-ID", hop.request_id.encode()))
    length = upstream_resp.content_length
    is_sse = upstream_resp.content_type == b"text/event-stream"
    is_ndjson = upstream_resp.content_type == b"application/x-ndjson"
    if translate is not None:
        return await _translated(request, hop, upstream_resp, target, timeouts, out_headers,
                                 is_sse, tap, translate)
    whole = max(_WHOLE_BODY_LIMIT, hop.whole_limit)
    if (not is_sse and length is not None and length <= whole) or status in _BODILESS:
        try:  # relay whole: one write, and still retryable if the body breaks off
            data = await upstream_resp.read_all()
        except REPLY_ERRORS as exc:
            raise upstream_failure(exc, target, timeouts, "body") from None
        return "ok", time.perf_counter(), hop.lane.reply(request, status, out_headers, data)
    # relay streamed: chunk by chunk as they arrive
    sink = hop.lane.sink(request, status, out_headers, length)
    splitter, filt = None, None
    if drop is not None and is_sse:  # one framing for the filter and the tap
        filt = EventFilter(drop, tap)
    elif tap is not None and is_sse:
        splitter = EventSplitter(tap)
    elif tap is not None and is_ndjson:  # Ollama's streams: the tap sees each line
        splitter = EventSplitter(tap, LINE_END)
    outcome, first_at = await _relay(request, sink, upstream_resp, target, timeouts, is_sse,
                                     splitter, filt, path=path)
    return outcome, first_at, sink.result


async def _translated(request: LaneRequest, hop: Hop, upstream_resp: client.Response,
                      target: Target, timeouts: Timeouts, out_headers: list,
                      is_sse: bool, tap: Tap | None,
                      translate: Translator) -> tuple[str, float | None, Answer]:
    """A 2xx reply turned into the client's API: read whole and translated at once, or
    streamed event by event through the translator (`tap` sees what the client gets)."""
    headers = [(k, v) for k, v in out_headers if k.lower() != b"content-type"]
    if not is_sse or not translate.stream:
        # whole, or an upstream that ignored the stream flag (a stream asked for and whole
        # JSON sent, or the reverse): read whole and made the kind the client asked for
        try:
            data = await upstream_resp.read_all()
        except REPLY_ERRORS as exc:
            raise upstream_failure(exc, target, timeouts, "body") from None
        try:
            data = made_whole(translate, data, is_sse, tap)
        except Exception as exc:  # not what the upstream's API promises: another may answer
            log.warning("untranslatable_reply", upstream=target.state.id, error=repr(exc))
            raise UpstreamFailure.of(target.state.id, "closed", 502,
                                     f"upstream {target.state.id} sent a reply eldric cannot "
                                     f"translate ({type(exc).__name__})") from None
        kind = translate.media_type.encode() if translate.stream else b"application/json"
        headers.append((b"Content-Type", kind))
        return "ok", time.perf_counter(), hop.lane.reply(request, upstream_resp.status,
                                                         headers, data)
    headers.append((b"Content-Type", translate.media_type.encode()))
    sink = hop.lane.sink(request, upstream_resp.status, headers, None)
    outcome, first_at = await _relay(request, sink, upstream_resp, target, timeouts, True,
                                     None, Translating(translate, tap), translate)
    return outcome, first_at, sink.result


def _settle(bus: Bus, hop: Hop, up: UpstreamState, upstream_resp: client.Response | None,
            outcome: str, first_at: float | None, t0: float) -> None:
    """The upstream connection kept or closed, and the request counted on the bus."""
    if upstream_resp is not None:
        if outcome in ("ok", "client_error", "unsupported"):
            upstream_resp.release()  # kept alive only if the reply was read whole
        else:
            upstream_resp.close()  # closes the connection: the backend stops at once
    if first_at is not None:
        hop.ttfb = first_at - hop.started
    ok = outcome == "ok"
    bus.request_finished(
        up, outcome, ttfb=first_at - t0 if ok and first_at is not None else None,
        latency=time.perf_counter() - t0 if ok else None)


async def _refusal(upstream_resp: client.Response, up: UpstreamState) -> UpstreamFailure:
    """An upstream's error reply (4xx/5xx) as a failure: body normalised to the OpenAI
    shape (the middleware puts it in the dialect of the client's path), the headers worth
    keeping kept."""
    status = upstream_resp.status
    raw = await _read_bounded(upstream_resp, _ERROR_BODY_LIMIT)
    failure = UpstreamFailure(up.id, "status", status, normalise(status, raw, up.id))
    failure.headers = text_headers([(k, v) for k, v in downstream_headers(upstream_resp.headers)
                                    if k.lower() not in _REENCODED])
    return failure


async def _relay(request: LaneRequest, resp: Sink, upstream_resp: client.Response,
                 target: Target, timeouts: Timeouts, is_sse: bool,
                 splitter: EventSplitter | None, filt: EventFilter | Translating | None = None,
                 translate: Translator | None = None,
                 path: str | None = None) -> tuple[str, float | None]:
    """Write the reply chunk by chunk as it arrives. Returns (outcome, first byte time).

    A stream that breaks ends with an error event in the dialect of `path`, the path it
    was asked of upstream: untranslated, its bytes are that API's (an Ollama stream
    through a tunnel is asked at /api/v1/tunnel/…/forward/api/chat, and is NDJSON).

    The upstream connection's own timer bounds the wait for the first chunk (first-byte
    timeout) and every silence after it (idle timeout); there is no total timeout."""
    first_at: float | None = None
    prepared = False
    last = b""
    # Everything that has arrived, so a burst of events goes out in one send; through a
    # translator one upstream chunk at a time, so one it cannot read cuts the stream
    # after the events before it, not before the head.
    read = upstream_resp.read_chunk if translate is not None else upstream_resp.read_available
    try:
        while True:
            chunk = await read()
            if not chunk:
                break
            if splitter is not None:
                splitter.feed(chunk)
            if filt is not None:
                chunk = filt.feed(chunk)
            if upstream_resp.complete:  # the reply's last bytes: they go with its end
                last = chunk
                break
            if not prepared:
                prepared = True
                first_at = time.perf_counter()
                await resp.start(chunk)  # the head and the first bytes in one send
            elif chunk:
                await resp.write(chunk)
        rest = filt.close() if filt is not None else b""  # an event the filter held back
    except REPLY_ERRORS as exc:
        failure = upstream_failure(exc, target, timeouts, "stream")
        if not prepared:
            raise failure from None
        framed = is_sse or upstream_resp.content_type == b"application/x-ndjson"
        await _cut(resp, failure, framed, exc, dialect.of_path(path or request.path),
                   translate)
        return "error", first_at
    except ConnectionError:  # the client's side: it went away
        _client_left(request, target.state)
        return "cancelled", first_at
    if splitter is not None:
        splitter.close()
    if not prepared:  # all of it here before the head went out: head, body, end at once
        first_at = time.perf_counter()
    try:
        await resp.end(last + rest)
    except ConnectionError:
        _client_left(request, target.state)
        return "cancelled", first_at
    return "ok", first_at


async def _cut(resp: Sink, failure: UpstreamFailure, is_sse: bool, exc: OSError,
               d: dialect.Dialect, translate: Translator | None = None) -> None:
    """The upstream failed after the reply's head went out: a stream ends with one error
    event in the client API's shape (SSE; Ollama's NDJSON); a JSON reply cut in the middle
    cannot be mended, so the connection is dropped and the client sees it incomplete
    rather than a truncated body that looks whole."""
    log.warning("upstream_failed_mid_stream", upstream=failure.upstream, error=str(exc))
    code = "upstream_timeout" if failure.kind == "timeout" else "upstream_error"
    if translate is not None:
        try:
            event = translate.cut(502, failure.message, code)
        except Exception as cut_exc:  # a translator that cannot even end its stream
            log.error("translator_cut_failed", error=repr(cut_exc))
            resp.abort()
            return
        await resp.write(event)
    elif is_sse:  # SSE, or Ollama's NDJSON (ended by an {"error": …} line)
        await resp.write(d.stream_error(502, failure.message, code))
    else:
        resp.abort()
        return
    await resp.end()


def _client_left(request: LaneRequest, up: UpstreamState) -> None:
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


__all__ = ["Target", "Timeouts", "forward", "with_fields"]
