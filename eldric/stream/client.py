"""A lean HTTP/1.1 client for the forwarding hot path: asyncio protocols + httptools.

Why not aiohttp's ClientSession here: profiling the worker hop showed the aiohttp client
at ~100 µs of CPU per request (request/response objects, tracing hooks, cookie jar,
per-request tasks), a third of the hop. forward() needs much less: write one request,
parse the status line and headers, hand body chunks on as they arrive, keep the
connection alive. The response parser is httptools (llhttp, the parser uvicorn uses).
aiohttp's ClientSession stays for everything off the hot path (probes, registration).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Iterable
from urllib.parse import urlsplit

import httptools

from eldric.stream.flow import ReadValve

# Body bytes buffered from an upstream before we stop reading its socket (flow control:
# a slow client slows the upstream down instead of growing memory).
_HIGH_WATER = 1 << 20
_LOW_WATER = 1 << 18


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

    def __init__(self, conn: _Conn) -> None:
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
        """The next body bytes as they arrived; b"" once the body is complete."""
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
        chunk = self._chunks.popleft()
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


class _Conn(asyncio.Protocol):
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
            self._close()
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("upstream tried to upgrade the connection"))
            self._close()

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
            self._close()
        elif self.valve.paused or now - self.last_data < self.idle_timeout:
            # Reading is paused for a slow client, or data came: not the upstream's silence.
            base = now if self.valve.paused else self.last_data
            self.timer = self.loop.call_at(base + self.idle_timeout, self._on_timer)
        else:
            self._fail(ReplyTimeout("idle", self.idle_timeout))
            self._close()

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
            self._close()

    def _fail(self, exc: BaseException) -> None:
        if self.head_waiter is not None and not self.head_waiter.done():
            self.head_waiter.set_exception(exc)
        if self.response is not None:
            self.response._end(exc)

    def _close(self) -> None:
        self._disarm()
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ConnectionPool:
    """Keep-alive connections per (scheme, host, port), shared by every role in a process.
    (Not the router's pool of workers.)"""

    def __init__(self, idle_timeout: float = 60.0, max_idle_per_host: int = 256) -> None:
        self.idle: dict[tuple[str, str, int], deque[_Conn]] = {}
        self.idle_timeout = idle_timeout
        self.max_idle_per_host = max_idle_per_host
        self._ssl: ssl.SSLContext | None = None
        self._hosts: dict[str, tuple[tuple[str, str, int], bytes, str]] = {}

    def _target(self, base_url: str) -> tuple[tuple[str, str, int], bytes, str]:
        """(pool key, Host header, path prefix) for a base URL; cached, URLs repeat."""
        hit = self._hosts.get(base_url)
        if hit is None:
            parts = urlsplit(base_url)
            scheme = parts.scheme or "http"
            host = parts.hostname or "127.0.0.1"
            port = parts.port or (443 if scheme == "https" else 80)
            default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
            host_header = host if default else f"{host}:{port}"
            if ":" in host and not host.startswith("["):
                host_header = f"[{host}]" if default else f"[{host}]:{port}"
            hit = self._hosts[base_url] = ((scheme, host, port), host_header.encode("idna"),
                                           parts.path.rstrip("/"))
        return hit

    async def request(self, method: str, base_url: str, target: str, header_block: bytes,
                      body: bytes, *, connect_timeout: float, first_byte_timeout: float,
                      idle_timeout: float) -> Response:
        """Send one request; return once the status line and headers have arrived.

        `header_block` is the request's header lines, already encoded ("Name: value\\r\\n"
        each; see eldric.stream.headers.upstream_header_block). Raises ReplyTimeout,
        ConnectTimeout, or an OSError (refused, reset, closed, TLS, not HTTP).
        """
        key, host, prefix = self._target(base_url)
        length = (b"Content-Length: %d\r\n" % len(body)
                  if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS") else b"")
        head = b"".join((f"{method} {prefix}{target} HTTP/1.1\r\nHost: ".encode("latin-1"),
                         host, b"\r\n", header_block, length, b"\r\n"))
        data = (head, body) if body else (head,)
        head_only = method == "HEAD"
        timers = (first_byte_timeout, idle_timeout)
        conn = self._take(key)
        if conn is not None:
            try:
                return await conn.send(data, Response(conn), head_only, *timers)
            except UpstreamClosed:
                # A pooled connection the upstream had just closed: nothing of the reply
                # arrived, so sending again on a fresh connection is safe.
                conn.finish(reusable=False)
        conn = await self._connect(key, connect_timeout)
        try:
            return await conn.send(data, Response(conn), head_only, *timers)
        except BaseException:
            conn.finish(reusable=False)
            raise

    async def _connect(self, key: tuple[str, str, int], timeout: float) -> _Conn:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: _Conn(self, key), host, port,
                                                       ssl=ctx,
                                                       server_hostname=host if ctx else None)
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {host}:{port} within {timeout:g}s") from None
        return conn

    def _take(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self.idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # most recently used: the least likely to have timed out
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                return conn
            conn._close()
        return None

    def put(self, conn: _Conn) -> None:
        idle = self.idle.setdefault(conn.key, deque())
        if len(idle) >= self.max_idle_per_host:
            conn._close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def forget(self, conn: _Conn) -> None:
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        for idle in self.idle.values():
            for conn in idle:
                conn._close()
        self.idle.clear()


class ConnectTimeout(TimeoutError):
    pass
