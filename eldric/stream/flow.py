"""Flow control, written once: the fast lane (its reading and its writing) and the upstream
client (its reading) use these two, so a slow reader slows its writer down on every
connection eldric has, instead of growing memory.

- ``ReadValve``: stop reading a transport while more than ``high`` bytes of what it sent
  wait to be consumed; read again once fewer than ``low`` do (or when the owner says so).
- ``WriteValve``: asyncio calls ``pause()``/``resume()`` (the protocol's pause_writing and
  resume_writing); ``wait()`` holds a writer between the two.
"""

from __future__ import annotations

import asyncio


class ReadValve:
    __slots__ = ("high", "low", "paused", "transport")

    def __init__(self, high: int, low: int) -> None:
        self.high = high
        self.low = low
        self.paused = False
        self.transport: asyncio.Transport | None = None

    def check(self, buffered: int) -> None:
        """`buffered` bytes wait to be consumed: pause above high, resume below low."""
        if self.paused:
            if buffered < self.low:
                self.resume()
        elif buffered > self.high:
            self.pause()

    def pause(self) -> None:
        transport = self.transport
        if not self.paused and transport is not None and not transport.is_closing():
            self.paused = True
            transport.pause_reading()

    def resume(self) -> None:
        transport = self.transport
        if self.paused and transport is not None and not transport.is_closing():
            self.paused = False
            transport.resume_reading()


class WriteValve:
    __slots__ = ("paused", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.paused = False
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def lost(self) -> None:
        """The connection is gone: a writer waiting learns it as the peer leaving."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionResetError("client closed the connection"))

    async def wait(self) -> None:
        """Return once the transport takes data again (at once if it does now)."""
        if not self.paused:
            return
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
