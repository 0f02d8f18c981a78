"""fetch(): send one request upstream for this hop to read itself, not to relay.

forward() streams a reply to the client; a hop that must read the reply first (the
router's swarm: each member's answer, the judge's verdict) uses fetch() instead. It keeps
forward()'s contract up to the reply's head, so a Failover can run it: before that, an
upstream failure raises UpstreamFailure (retryable or not, the same mapping), and a 4xx/5xx
reply raises its normalised failure. After the head, the caller reads the body from the
Fetched and closes it; the request is counted on the bus (in flight, latency, outcome)
until then, so the router's ranking and concurrency caps see it like any other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from eldric import keys
from eldric.bus import Bus, UpstreamState
from eldric.errors import UpstreamFailure
from eldric.exchange import LaneRequest, RawPairs
from eldric.stream import client
from eldric.stream.forward import _refusal
from eldric.stream.headers import upstream_header_block
from eldric.stream.target import REPLY_ERRORS, Target, Timeouts, upstream_failure


class Fetched:
    """An upstream's 2xx reply, read by this hop: whole (read_all) or as it comes
    (chunks); close() ends it (early: the connection is closed, the backend stops)."""

    __slots__ = ("status", "content_type", "_resp", "_bus", "_up", "_target", "_timeouts",
                 "_t0", "_first", "_open", "_span")

    def __init__(self, bus: Bus, target: Target, timeouts: Timeouts, resp: client.Response,
                 t0: float, span: Any = None) -> None:
        self._span = span  # the attempt's CLIENT span when traced (eldric.trace.otel)
        self.status = resp.status
        self.content_type = resp.content_type
        self._resp = resp
        self._bus = bus
        self._up = target.state
        self._target = target
        self._timeouts = timeouts
        self._t0 = t0
        self._first = time.perf_counter()
        self._open = True

    async def read_all(self) -> bytes:
        """The whole body; a reply that breaks off raises UpstreamFailure (and is closed)."""
        return b"".join([chunk async for chunk in self.chunks("body")])

    async def chunks(self, phase: str = "stream") -> AsyncIterator[bytes]:
        """The body as it arrives; a reply that breaks off raises UpstreamFailure."""
        try:
            while chunk := await self._resp.read_chunk():
                yield chunk
        except REPLY_ERRORS as exc:
            self.close("error")
            raise upstream_failure(exc, self._target, self._timeouts, phase) from None
        except BaseException:
            self.close("cancelled")
            raise
        self.close("ok")

    def close(self, outcome: str = "cancelled") -> None:
        """Done with the reply (idempotent): kept alive only if it was read whole."""
        if not self._open:
            return
        self._open = False
        if outcome == "ok":
            self._resp.release()
        else:
            self._resp.close()
        if self._span is not None:
            from eldric.trace import otel
            otel.settle(self._span, self.status, outcome)
        ok = outcome == "ok"
        self._bus.request_finished(self._up, outcome, ttfb=self._first - self._t0 if ok else None,
                                   latency=time.perf_counter() - self._t0 if ok else None)


async def fetch(request: LaneRequest, target: Target, path: str, body: bytes, *,
                timeouts: Timeouts, raw_headers: RawPairs | None = None,
                span: Any = None) -> Fetched:
    """POST `body` to target+path with the request's headers (or `raw_headers`); returns
    once a 2xx head is here. Raises UpstreamFailure otherwise, as forward() does.
    Traced, it makes the attempt's CLIENT span as forward() does (`span`: the caller's
    span for this attempt, a swarm member's), ended when the Fetched is closed."""
    app = request.app
    bus = app[keys.BUS]
    up = target.state
    raw = request.raw_headers if raw_headers is None else raw_headers
    hop = request[keys.HOP]
    extra = target.headers
    attempt = None
    if hop.span is not None:
        from eldric.trace import otel
        attempt, extra = otel.outgoing(hop.span, span, "POST", target.base_url, path, extra)
    try:
        return await _open(app, bus, target, path, body, timeouts,
                           upstream_header_block(raw, hop.request_id, extra), attempt)
    except BaseException as exc:
        if attempt is not None:
            status = getattr(exc, "status", None)
            otel.settle(attempt, status,
                        "cancelled" if isinstance(exc, asyncio.CancelledError) else
                        "client_error" if status is not None and status < 500 else "error")
        raise


async def _open(app: Any, bus: Bus, target: Target, path: str, body: bytes,
                timeouts: Timeouts, header_block: bytes, attempt: Any) -> Fetched:
    up = target.state
    t0 = time.perf_counter()
    bus.request_started(up)
    try:
        try:
            resp = await app[keys.UPSTREAM].request(
                "POST", target.base_url, path, header_block, body,
                connect_timeout=timeouts.connect, first_byte_timeout=timeouts.first_byte,
                idle_timeout=timeouts.idle)
        except OSError as exc:
            raise upstream_failure(exc, target, timeouts, "open") from None
    except UpstreamFailure:
        bus.request_finished(up, "error")
        raise
    except asyncio.CancelledError:
        bus.request_finished(up, "cancelled")
        raise
    if resp.status >= 400:
        try:
            failure = await _refusal(resp, up)
        except BaseException:
            resp.close()
            bus.request_finished(up, "cancelled")
            raise
        resp.release()
        outcome = "error" if failure.retryable and failure.kind != "unsupported" else \
            ("unsupported" if failure.kind == "unsupported" else "client_error")
        bus.request_finished(up, outcome)
        raise failure
    return Fetched(bus, target, timeouts, resp, t0, attempt)
