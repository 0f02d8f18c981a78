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
- ``drain(runner, grace)``: what ``runner.cleanup()`` does first, ``pre_shutdown()``
  (stop taking requests: idle keep-alive connections close) and ``shutdown(timeout)``
  (wait for replies in progress, then close), run alongside the lane's own drain so the
  grace period is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

Factory = Callable[[], asyncio.Protocol]


def protocol_factory(runner: web.AppRunner) -> Factory:
    server = runner.server
    if server is None:
        raise RuntimeError("the runner is not set up")
    return server  # type: ignore[return-value]  # web.Server.__call__ -> RequestHandler


def hand_over(transport: asyncio.Transport, factory: Factory, data: bytes) -> asyncio.Protocol:
    """The connection is aiohttp's from here on; `data` is what arrived and nobody read."""
    handler = factory()
    transport.set_protocol(handler)
    handler.connection_made(transport)
    if data:
        handler.data_received(data)
    return handler


async def drain(runner: web.AppRunner, grace: float) -> None:
    """Finish the connections aiohttp owns within `grace` seconds."""
    server = runner.server
    if server is None:
        return
    await asyncio.sleep(0)
    server.pre_shutdown()
    await server.shutdown(grace)
