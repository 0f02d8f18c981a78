"""A lean HTTP/1.1 client for the forwarding hot path: asyncio protocols + httptools.

Why not aiohttp's ClientSession here: profiling the worker hop showed the aiohttp client
at ~100 µs of CPU per request (request/response objects, tracing hooks, cookie jar,
per-request tasks), a third of the hop. forward() needs much less: write one request,
parse the status line and headers, hand body chunks on as they arrive, keep the
connection alive. The response parser is httptools (llhttp, the parser uvicorn uses).
aiohttp's ClientSession stays for everything off the hot path (probes, registration).
The pool of these connections is eldric.stream.pool.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

import httptools

from eldric.stream.flow import ReadValve

if TYPE_CHECKING:
    from eldric.stream.pool import ConnectionPool

# Body bytes buffered from an upstream before we stop reading its socket (flow control:
# a slow client slows the upstream down instead of growing memory).
_HIGH_WATER = 1 << 20
_LOW_WATER = 1 << 18


class ConnectTimeout(TimeoutError):
    """No connection to the upstream within the connect timeout."""


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before its reply was complete."""


class ProtocolError(ConnectionError):
    """The upstream sent something that is not HTTP/1.x."""


class ReplyTimeout(TimeoutError):
    """The upstream was silent too long: before its first body byte, or between two.
    (Not eldric.errors.UpstreamTimeout, the 504 a client gets.)"""

    def __init__(self, phase: str, seconds: float) -> None:
        self.phase = phase  # first_byte | idle
        self.seconds = seconds
        what = "first-byte timeout" if phase == "first_byte" else "idle timeout"
        super().__init__(f"no data for {seconds:g}s ({what})")


class Response:
    """One upstream reply: status and headers, then body chunks as they arrive.

    Headers are the (name, value) bytes as received: relayed as they came, never decoded
    and encoded again (a byte outside ASCII stays that byte)."""

    __slots__ = ("status", "headers", "content_type", "content_length", "_chunks", "_buffered",
                 "_waiter", "_done", "_error", "_conn")

    def __init__(self, conn: Connection) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_type = b""
        self.content_length: int | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._conn = conn

    @property
    def complete(self) -> bool:
        return self._done and not self._chunks

    async def read_chunk(self) -> bytes:
        """The next body bytes as they arrived (one upstream HTTP chunk); b"" once the
        body is complete."""
        return await self._read(False)

    async def read_available(self) -> bytes:
        """Every body chunk that has arrived, joined (one relay write for a burst, not
        one per upstream chunk); b"" once the body is complete."""
        return await self._read(True)

    async def _read(self, joined: bool) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunks = self._chunks
        if len(chunks) == 1 or not joined:
            chunk = chunks.popleft()
        else:
            chunk = b"".join(chunks)
            chunks.clear()
        self._buffered -= len(chunk)
        if self._conn.valve.paused:
            self._conn.valve.check(self._buffered)
        return chunk

    async def read_all(self) -> bytes:
        parts = []
        while chunk := await self.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        """Done with the reply: keep the connection for reuse if the reply was read whole,
        else close it (which is what tells a backend to stop generating)."""
        self._conn.finish(reusable=self.complete)

    def close(self) -> None:
        self._conn.finish(reusable=False)

    # Called by the protocol.
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER:
            self._conn.valve.pause()
        self._wake()

    def _end(self, error: BaseException | None = None) -> None:
        if error is not None and not self._done:
            self._error = error
        self._done = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Connection(asyncio.Protocol):
    """One keep-alive connection to an upstream; one request at a time."""

    def __init__(self, pool: ConnectionPool, key: tuple[str, str, int]) -> None:
        self.pool = pool
        self.key = key
        # Kept: asyncio.get_running_loop() costs a getpid() syscall per call on 3.11.
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.head_waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.valve = ReadValve(_HIGH_WATER, _LOW_WATER)
        self.keep_alive = True
        self.idle_since = 0.0
        self.head_only = False
        # One timer per request, re-armed lazily: data arrival only stamps last_data, and
        # the timer, when it fires, checks whether the upstream was really silent. This
        # replaces an asyncio.timeout() per request and a reschedule per chunk.
        self.timer: asyncio.TimerHandle | None = None
        self.first_timeout = 0.0
        self.idle_timeout = 0.0
        self.got_body = False
        self.last_data = 0.0

    @property
    def paused(self) -> bool:
        """Reading is paused: a slow client has not taken what came."""
        return self.valve.paused

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self.valve.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last_data = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP from upstream: {exc}"))
            self.drop()
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("upstream tried to upgrade the connection"))
            self.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        self._fail(UpstreamClosed("upstream closed the connection" +
                                  (f": {exc}" if exc else "")))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers.append((name, value))

    def on_headers_complete(self) -> None:
        resp = self.response
        assert resp is not None
        resp.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        for name, value in resp.headers:
            low = name.lower()
            if low == b"content-type":
                resp.content_type = value.split(b";", 1)[0].strip().lower()
            elif low == b"content-length":
                try:
                    resp.content_length = int(value)
                except ValueError:
                    pass
        if self.head_only:  # a reply to HEAD has no body, whatever its headers say
            self.keep_alive = False
            resp._end()
        if self.head_waiter is not None and not self.head_waiter.done():
            self.head_waiter.set_result(resp)

    def on_body(self, body: bytes) -> None:
        if not self.got_body:
            # From the first body byte on, silences are bounded by the idle timeout.
            self.got_body = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = self.loop.call_at(self.last_data + self.idle_timeout,
                                               self._on_timer)
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if self.response is not None:
            self.response._end()

    # ours
    def send(self, data: Iterable[bytes], response: Response, head_only: bool,
             first_timeout: float, idle_timeout: float) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.response = response
        self.head_only = head_only
        self.head_waiter = self.loop.create_future()
        self.got_body = False
        self.first_timeout = first_timeout
        self.idle_timeout = idle_timeout
        self.last_data = now = self.loop.time()
        self.timer = self.loop.call_at(now + first_timeout, self._on_timer)
        self.transport.writelines(data)
        return self.head_waiter

    def _on_timer(self) -> None:
        self.timer = None
        if self.response is None or self.closed:
            return
        now = self.loop.time()
        if not self.got_body:
            # Headers may come early (a streaming server), the first body byte is what a
            # long prompt delays: until it, the first-byte timeout applies.
            self._fail(ReplyTimeout("first_byte", self.first_timeout))
            self.drop()
        elif self.valve.paused or now - self.last_data < self.idle_timeout:
            # Reading is paused for a slow client, or data came: not the upstream's silence.
            base = now if self.valve.paused else self.last_data
            self.timer = self.loop.call_at(base + self.idle_timeout, self._on_timer)
        else:
            self._fail(ReplyTimeout("idle", self.idle_timeout))
            self.drop()

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def finish(self, reusable: bool) -> None:
        if self.response is None:
            return
        self._disarm()
        self.response = None
        self.head_waiter = None
        if reusable and self.keep_alive and not self.closed:
            self.valve.resume()
            self.pool.put(self)
        else:
            self.drop()

    def _fail(self, exc: BaseException) -> None:
        if self.head_waiter is not None and not self.head_waiter.done():
            self.head_waiter.set_exception(exc)
        if self.response is not None:
            self.response._end(exc)

    def drop(self) -> None:
        """Close the connection now (a reply in progress ends with an error)."""
        self._disarm()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
