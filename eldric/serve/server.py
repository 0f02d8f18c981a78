"""FastServer: one role's listening socket on the fast lane, its connections, its drain."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from eldric import keys
from eldric.exchange import LaneRequest
from eldric.serve.aiohttp_glue import hand_over, protocol_factory
from eldric.serve.protocol import FastProtocol
from eldric.serve.splice import Proxied
from eldric.tasks import cancel, spawn

log = structlog.get_logger("eldric.serve")

# A fast route's handler: what it gets is typed with the part of a request both lanes
# offer, so a handler using what the lane lacks is a type error.
Handler = Callable[[LaneRequest], Awaitable[Any]]

# The role's fast routes: path -> handler (POST only); see fast_post().
FAST_ROUTES: web.AppKey[dict[str, Handler]] = web.AppKey("eldric_fast_routes")


def fast_post(app: web.Application, path: str, handler: Handler) -> None:
    """Route POST `path` to `handler` on both servers: aiohttp (every connection it owns)
    and the fast lane. The handler must use only what FastRequest offers."""
    app.router.add_post(path, handler)
    app.setdefault(FAST_ROUTES, {})[path] = handler


def fast_routes(app: web.Application) -> dict[bytes, tuple[Handler, str]]:
    """The routes that may take the lane; none when the app has a middleware of its own
    (CORS, a plugin's): that middleware runs only on aiohttp, so everything goes there."""
    routes = app.get(FAST_ROUTES) or {}
    if len(app.middlewares) != 1:
        if routes:  # a role that has inference routes loses the lane: say so, once
            extra = ", ".join(getattr(m, "__name__", type(m).__name__)
                              for m in app.middlewares[1:])
            log.info("fast_lane_off", role=app[keys.ROLE].name,
                     why=f"a middleware of its own ({extra}) runs only on aiohttp",
                     cost="every request takes aiohttp's server path: ~35-50 us more CPU per "
                          "request at this hop, ~1.5x (docs/design-notes.md, the fast lane)")
        return {}  # every request is handed over (after the malformed-head check)
    return {path.encode("latin-1"): (handler, path) for path, handler in routes.items()}


class FastServer:
    def __init__(self, app: web.Application, runner: web.AppRunner,
                 routes: dict[bytes, tuple[Handler, str]],
                 hand: Callable[[asyncio.Transport, bytes], object] | None = None,
                 splices: set | None = None) -> None:
        cfg = app[keys.CONFIG]
        self.app = app
        self.routes = routes
        self.aiohttp = protocol_factory(runner)  # makes aiohttp's per-connection protocol
        # Where a request the lane does not take goes: aiohttp here, or (a child of
        # --processes) the primary, spliced (eldric.serve.splice), tracked in `splices`.
        self.hand = hand or (lambda transport, data: hand_over(transport, self.aiohttp, data))
        self.splices = splices if splices is not None else set()
        self.max_body = cfg.max_body_bytes
        self.body_timeout_ms = cfg.body_timeout_ms
        # aiohttp's runner gets the same value (eldric.app), so both lanes agree
        self.keepalive_timeout = cfg.keepalive_timeout_ms / 1000
        self.loop = asyncio.get_running_loop()
        self.conns: set[FastProtocol] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task | None = None

    async def start(self, sock: socket.socket, ssl_context: ssl.SSLContext | None) -> None:
        self._server = await self.loop.create_server(lambda: FastProtocol(self), sock=sock,
                                                     ssl=ssl_context, backlog=1024)
        self._sweeper = spawn(self._sweep(), name="fast-lane-keepalive")

    async def start_unix(self, path: str, proxied: bool = False,
                         tls: ssl.SSLContext | None = None) -> None:
        """A private listener on a unix socket (--processes: eldric.processes). `proxied`:
        each connection opens with a child's PROXY line, and was TLS on the public port
        when the role listens with `tls` (eldric.serve.splice)."""
        make: Callable[[], asyncio.Protocol]
        if proxied:
            make = lambda: Proxied(lambda: FastProtocol(self), tls)  # noqa: E731
        else:
            make = lambda: FastProtocol(self)  # noqa: E731
        self._server = await self.loop.create_unix_server(make, path, backlog=1024)
        self._sweeper = spawn(self._sweep(), name="fast-lane-keepalive")

    async def _sweep(self) -> None:
        """Close keep-alive connections idle for keepalive_timeout_ms (one timer for all of
        them, not one per request): within a quarter of it (at most 5 s) after it ran out."""
        timeout = self.keepalive_timeout
        while True:
            await asyncio.sleep(min(5.0, timeout / 4))
            limit = self.loop.time() - timeout
            for conn in list(self.conns):
                if conn.idle and conn.last_active < limit and conn.transport:
                    conn.transport.close()

    def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    async def drain(self, timeout: float) -> None:
        """Let replies in progress finish (within `timeout`), close idle connections now,
        then cut whatever is left."""
        if self._sweeper is not None:
            await cancel(self._sweeper)
        deadline = self.loop.time() + timeout
        while self.conns:
            for conn in list(self.conns):
                conn.closing = True
                if conn.idle and conn.transport is not None:
                    conn.transport.close()
            if self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        while self.splices and self.loop.time() < deadline:
            await asyncio.sleep(0.05)  # relayed connections end when the primary's do
        for conn in list(self.conns):
            conn.abort()
        for splice in list(self.splices):
            splice.abort()
        if self._server is not None:
            await self._server.wait_closed()
