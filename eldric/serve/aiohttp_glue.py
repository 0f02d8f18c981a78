"""Every use eldric makes of aiohttp's internals, in one place.

The fast lane owns each role's listening socket and hands aiohttp the connections (and
requests) it does not take; the drain runs aiohttp's connection shutdown alongside the
lane's. None of this is aiohttp's documented API, so tests/serve/test_aiohttp_glue.py
pins the behaviour each function relies on: an aiohttp upgrade that breaks one fails
that test by name, not the suite at random.

- ``protocol_factory(runner)``: ``AppRunner.server`` (a ``web.Server``, set by
  ``setup()``), called with no argument, makes aiohttp's per-connection protocol
  (``RequestHandler``), as a site's ``loop.create_server`` would.
- ``hand_over(transport, factory, data)``: ``transport.set_protocol()`` onto a new one,
  ``connection_made()``, then the bytes the lane had buffered through
  ``data_received()``; aiohttp parses them as if they had just arrived.
- ``_Handler``: aiohttp's per-connection protocol, but a request aiohttp's parser
  refuses (a malformed chunked body, a head over its limits) gets eldric's OpenAI-shaped
  400 (``bad_http_request``, as the lane gives a malformed head), not aiohttp's text;
  made from the server's private ``_loop`` and ``_kwargs``, as ``web.Server()`` does.
  aiohttp queues a parse error as a message of its own (``_ErrInfo``) behind the request
  whose body broke, which meanwhile waits for the rest of that body (the body timeout,
  408): the error goes to that request's body instead (``read_body`` answers 400) and the
  connection closes after the reply (``close()``, no ``_lingering_time`` read of a body
  that cannot go on).
- ``MAX_LINE``/``MAX_HEADERS``: aiohttp's parser limits, which the lane applies too, so a
  request is refused or taken the same whichever lane reads it.
- ``send_continue(request)``: a route registered with ``expect_handler=no_continue``
  answers `Expect: 100-continue` itself, after its own checks (the model registry's
  upload: the key, the size, the disk), so a refused client never sends its body; the
  interim line is written as aiohttp's default expect handler writes it
  (``request.writer.write``, then ``output_size`` back to 0: the reply has not begun).
- ``drain(runner, grace)``: what ``runner.cleanup()`` does first, ``pre_shutdown()``
  (stop taking requests: idle keep-alive connections close) and ``shutdown(timeout)``
  (wait for replies in progress, then close), run alongside the lane's own drain so the
  grace period is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from eldric.errors import error_json

log = structlog.get_logger("eldric.serve")

Factory = Callable[[], asyncio.Protocol]

# aiohttp's RequestHandler defaults: the longest request line or header field, and the
# most headers, its parser takes.
MAX_LINE = 8190
MAX_HEADERS = 128


class _Handler(RequestHandler):
    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        err = self._messages[-1][0] if len(self._messages) > queued else None
        if not isinstance(err, _ErrInfo):
            return
        current = self._current_request
        if current is not None and not current.content.is_eof():
            self._messages.pop()  # the body in progress broke: it is its error
            current.content.set_exception(err.exc)
            self._lingering_time = 0.0  # nothing of that body is left to read and drop
            self.close()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status != 400:
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:  # as aiohttp: a reply is under way, cannot answer
            raise ConnectionError("a reply was sent already")
        # aiohttp's message: a first line, then the client's bytes; only the first is said
        reason = (message or "bad request").split("\n", 1)[0].split(": b'", 1)[0].rstrip(": ")
        log.debug("bad_http_request", reason=reason, remote=request.remote)
        resp = web.Response(status=400, content_type="application/json", body=error_json(
            400, f"malformed HTTP request: {reason}", code="bad_http_request"))
        resp.force_close()
        return resp


def protocol_factory(runner: web.AppRunner) -> Factory:
    server = runner.server
    if server is None:
        raise RuntimeError("the runner is not set up")
    loop, kwargs = server._loop, server._kwargs  # what web.Server.__call__ passes
    return lambda: _Handler(server, loop=loop, **kwargs)


def hand_over(transport: asyncio.Transport, factory: Factory, data: bytes) -> asyncio.Protocol:
    """The connection is aiohttp's from here on; `data` is what arrived and nobody read."""
    handler = factory()
    transport.set_protocol(handler)
    handler.connection_made(transport)
    if data:
        handler.data_received(data)
    return handler


async def no_continue(request: web.Request) -> None:
    """An expect handler that sends nothing: the route's handler decides (send_continue)."""


async def send_continue(request: web.Request) -> None:
    """`100 Continue`, if the client asked for it (HTTP/1.1 `Expect: 100-continue`)."""
    if request.version >= (1, 1) and \
            request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0


async def drain(runner: web.AppRunner, grace: float) -> None:
    """Finish the connections aiohttp owns within `grace` seconds."""
    server = runner.server
    if server is None:
        return
    await asyncio.sleep(0)
    server.pre_shutdown()
    await server.shutdown(grace)
