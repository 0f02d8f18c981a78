"""One client connection on the fast lane (see eldric.serve for what takes the lane)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httptools
import structlog

from eldric.errors import error_json
from eldric.exchange import Reply
from eldric.http import body_timeout, middleware
from eldric.serve.aiohttp_glue import MAX_HEADERS, MAX_LINE
from eldric.serve.checks import HandOver, Malformed, check, limits, unfolded
from eldric.serve.reply import whole
from eldric.serve.request import FAST, FastRequest
from eldric.stream.flow import ReadValve, WriteValve

if TYPE_CHECKING:
    from eldric.serve.server import FastServer, Handler

log = structlog.get_logger("eldric.serve")

# A head longer than this is not a plain API request: aiohttp gets it (and its limits).
MAX_HEAD = 16 * 1024
# Pipelined bytes buffered while a reply is in progress before we stop reading.
_READ_HIGH_WATER = 256 * 1024
# Headers that send a request to aiohttp: framing and protocol features the lane does not
# implement (aiohttp does, exactly as before).
_TO_AIOHTTP = frozenset((b"transfer-encoding", b"expect", b"upgrade"))


class FastProtocol(asyncio.Protocol):
    __slots__ = ("server", "transport", "buf", "req", "need", "task", "started", "closing",
                 "last_active", "_parser", "_headers", "_length", "_odd",
                 "_reading", "_writing", "_body_timer", "_handler")

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.req: FastRequest | None = None  # head read, body still arriving
        self.need = 0  # its Content-Length
        self.task: asyncio.Task | None = None  # the request being handled
        self.started = False  # the current reply's head has been written
        # The current reply is this connection's last: the client said so (see
        # _read_head), or eldric is closing (drain, 408). The one rule for the lane's
        # replies, whole or streamed: the last says `Connection: close`, then it closes.
        self.closing = False
        self.last_active = 0.0
        self._parser = httptools.HttpRequestParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._length = 0
        self._odd = False
        # Pipelined bytes are not read past a high-water mark while a reply is in progress;
        # writes wait while the client's socket buffer is full.
        self._reading = ReadValve(_READ_HIGH_WATER, 0)
        self._writing = WriteValve(server.loop)
        self._body_timer: asyncio.TimerHandle | None = None
        self._handler: Handler | None = None  # the fast route of the request being read

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self._reading.transport = transport  # type: ignore[assignment]
        self.last_active = self.server.loop.time()
        self.server.conns.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is None:
            self._next()
        else:
            self._reading.check(len(self.buf))

    def eof_received(self) -> bool:
        """The client closed its side (FIN). With a request in progress that is the client
        leaving, as a reset is: its handler is cancelled (forward() closes the upstream
        connection, so the backend stops), pipelined requests behind it and a body still
        arriving are dropped, and the connection closes. aiohttp does the same on the
        connections it owns (handler_cancellation), and so does nginx unless told to
        ignore client aborts. eldric's own upstream client closes with a FIN, so this is
        also how a router that gives up on a worker stops the worker's backend."""
        if self.task is not None:
            self.task.cancel()
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)
        self.transport = None
        if self._body_timer is not None:
            self._body_timer.cancel()
        if self.task is not None:
            self.task.cancel()  # the client left: stop the upstream request too
        self._writing.lost()

    def pause_writing(self) -> None:
        self._writing.pause()

    def resume_writing(self) -> None:
        self._writing.resume()

    # ------------------------------------------------------------------ httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        low = name.lower()
        if low == b"content-length":
            self._length = int(value)  # llhttp has checked it is a number
        elif low in _TO_AIOHTTP:
            self._odd = True

    # ------------------------------------------------------------------ framing

    def _next(self) -> None:
        """Start on whatever complete request the buffer holds (one at a time)."""
        try:
            if self.req is None and not self._read_head():
                return
            if len(self.buf) < self.need:
                if self._body_timer is None:
                    self._body_timer = self.server.loop.call_later(self.server.body_timeout_ms / 1000,
                                                                   self._body_timed_out)
                return
            self._dispatch()
        except HandOver:
            self._hand_over()
        except Malformed as exc:
            self._reject(str(exc))

    def _read_head(self) -> bool:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD or b"\n\n" in buf:  # huge, or bare-LF lines: aiohttp's
                limits(buf, 0)
                raise HandOver
            return False
        if end > MAX_HEAD:
            limits(buf[:end], 0)
            raise HandOver  # a head this long is aiohttp's, as when it comes in pieces
        head = bytes(buf[:end + 4])
        parts = head[:head.find(b"\r\n")].split(b" ")
        route = None
        if len(parts) == 3 and parts[0] == b"POST" and parts[2] == b"HTTP/1.1":
            path, _, query = parts[1].partition(b"?")
            route = self.server.routes.get(path)
        if route is None:
            check(head)  # a malformed head gets our JSON 400, not aiohttp's plain text
            raise HandOver
        self._headers = []
        self._length = 0
        self._odd = False
        try:
            self._parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            raise HandOver from None
        except (httptools.HttpParserError, ValueError) as exc:
            raise Malformed(str(exc)) from None
        if len(self._headers) > MAX_HEADERS or end > MAX_LINE:
            limits(head, len(self._headers))
        else:
            unfolded(head)
        if self._odd or self._length > self.server.max_body:
            raise HandOver
        if not self._parser.should_keep_alive():
            # llhttp's verdict on `Connection: close` (and HTTP/1.0), the same parser and
            # rule aiohttp answers by on the connections it owns
            self.closing = True
        del buf[:end + 4]
        self.req = FastRequest(self, self.server.app, route[1], query.decode("latin-1"),
                               self._headers)
        self.need = self._length
        self._handler = route[0]
        return True

    def _dispatch(self) -> None:
        req = self.req
        assert req is not None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        need = self.need
        if need:
            body = bytes(memoryview(self.buf)[:need])  # one copy (the view is gone before del)
            del self.buf[:need]
            self._parser.feed_data(body)  # keeps the parser in step for the next request
            req.body = body
        self.req = None
        self.need = 0
        self.task = self.server.loop.create_task(self._run(req, self._handler))

    def _body_timed_out(self) -> None:
        """The body did not arrive in time (slow loris): 408, then close."""
        self._body_timer = None
        req = self.req
        if req is None or self.task is not None:
            return
        self.req = None
        self.closing = True
        error = body_timeout(self.server.body_timeout_ms)

        async def refuse(_request: FastRequest) -> None:
            raise error

        self.task = self.server.loop.create_task(self._run(req, refuse))

    def _reject(self, reason: str) -> None:
        """Not HTTP: one OpenAI-shaped 400, then close (nothing after it can be framed)."""
        transport = self.transport
        if transport is None:
            return
        self.buf.clear()
        body = error_json(400, f"malformed HTTP request: {reason}", code="bad_http_request")
        transport.write(whole(Reply(400, [(b"Content-Type", b"application/json")], body), True))
        transport.close()

    def _hand_over(self) -> None:
        """This connection goes to aiohttp from the first byte of the current request on."""
        transport = self.transport
        if transport is None:
            return
        data = bytes(self.buf)
        self.buf.clear()
        self.server.conns.discard(self)
        self.transport = None
        self.server.hand(transport, data)
        self._reading.resume()

    # ------------------------------------------------------------------ replying

    async def _run(self, req: FastRequest, handler) -> None:  # type: ignore[no-untyped-def]
        try:
            resp = await middleware(req, handler, FAST)
            transport = self.transport
            if transport is None:
                return
            if not self.started:
                transport.write(whole(resp, self.closing))
            elif not resp.prepared:  # an error after a streamed head: cannot be sent
                self.abort()
                return
        except asyncio.CancelledError:
            return  # the client left (the middleware has logged it)
        except Exception:  # noqa: BLE001 - must never leave the connection hanging
            log.exception("fast_lane_error", path=req.path)
            self.abort()
            return
        finally:
            self.task = None
            self.started = False
        self._after_reply()

    def _after_reply(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if self.closing:
            transport.close()
            return
        self.last_active = self.server.loop.time()
        self._reading.resume()
        if self.buf:
            self._next()

    async def send(self, data: bytes) -> None:
        """Write, and wait while the client's socket buffer is full."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client closed the connection")
        transport.write(data)
        if self._writing.paused:
            await self._writing.wait()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def idle(self) -> bool:
        # a partial head or leftover bytes are not a request yet
        return self.task is None and self.req is None
