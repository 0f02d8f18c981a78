"""The upstream client's keep-alive connections (eldric.stream.client holds one
connection and its reply): one pool per process, shared by every role in it."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

from eldric.stream.client import ConnectTimeout, Response, UpstreamClosed, Connection


class ConnectionPool:
    """Keep-alive connections per (scheme, host, port), shared by every role in a process.
    (Not the router's pool of workers.)"""

    def __init__(self, idle_timeout: float = 60.0, max_idle_per_host: int = 256) -> None:
        self.idle: dict[tuple[str, str, int], deque[Connection]] = {}
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
            except BaseException:
                # Given up before the head (cancelled: a client gone, a swarm's round
                # timeout): closed now, so the upstream stops working for nobody rather
                # than when the first-byte timer fires.
                conn.finish(reusable=False)
                raise
        conn = await self._connect(key, connect_timeout)
        try:
            return await conn.send(data, Response(conn), head_only, *timers)
        except BaseException:
            conn.finish(reusable=False)
            raise

    async def _connect(self, key: tuple[str, str, int], timeout: float) -> Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: Connection(self, key), host, port,
                                                       ssl=ctx,
                                                       server_hostname=host if ctx else None)
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {host}:{port} within {timeout:g}s") from None
        return conn

    def _take(self, key: tuple[str, str, int]) -> Connection | None:
        idle = self.idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # most recently used: the least likely to have timed out
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                return conn
            conn.drop()
        return None

    def put(self, conn: Connection) -> None:
        idle = self.idle.setdefault(conn.key, deque())
        if len(idle) >= self.max_idle_per_host:
            conn.drop()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def forget(self, conn: Connection) -> None:
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        for idle in self.idle.values():
            for conn in idle:
                conn.drop()
        self.idle.clear()
