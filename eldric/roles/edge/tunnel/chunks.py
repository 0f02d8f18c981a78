"""The bounded relay between a worker's response upload and the caller waiting for it.

The upload puts chunks in, the caller's forward() takes them out as it writes them. At
most BOUND chunks wait: a slow caller stops the upload handler reading, and TCP then
slows the worker down, so a slow router back-pressures the worker, not the edge's memory.
"""

from __future__ import annotations

import asyncio
from collections import deque

BOUND = 16  # chunks (a worker's SSE chunks are small: an event or a few)


class Chunks:
    def __init__(self, bound: int = BOUND) -> None:
        self.bound = bound
        self.items: deque[bytes] = deque()
        self.ended = False  # the upload is complete
        self.error: BaseException | None = None  # the upload broke off
        self.closed = False  # the caller stopped reading (it left, or its relay failed)
        self.drained = False  # the caller read to the end: everything was relayed
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()

    async def put(self, chunk: bytes) -> bool:
        """Queue a chunk, waiting while the queue is full; False once the caller is gone."""
        while len(self.items) >= self.bound and not self.closed:
            self._writable.clear()
            await self._writable.wait()
        if self.closed:
            return False
        self.items.append(chunk)
        self._readable.set()
        return True

    def end(self, error: BaseException | None = None) -> None:
        if not self.ended:
            self.ended, self.error = True, error
            self._readable.set()

    async def get(self) -> bytes:
        """The next chunk; b"" at the end; raises the upload's error if it broke off."""
        while not self.items:
            if self.error is not None:
                raise self.error
            if self.ended:
                self.drained = True
                self._writable.set()
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self.items.popleft()
        self._writable.set()
        return chunk

    def close(self) -> None:
        """The caller is gone: the upload stops at its next chunk."""
        self.closed = True
        self.items.clear()
        self._writable.set()

    async def relayed(self) -> bool:
        """Wait until the caller read everything (True) or left (False)."""
        while not self.drained and not self.closed:
            self._writable.clear()
            await self._writable.wait()
        return self.drained
