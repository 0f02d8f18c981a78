"""A tunnel's queue of requests waiting for the worker: popped only by a poll.

Not asyncio.Queue: a caller that leaves while its request waits must take it out again
(the worker would otherwise run it for nobody), and a poll hands its request straight to
a poll already waiting, with no task in between.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class PollQueue(Generic[T]):
    def __init__(self) -> None:
        self.items: deque[T] = deque()
        self.waiters: deque[asyncio.Future[T]] = deque()

    def __len__(self) -> int:
        return len(self.items)

    def _hand(self, item: T) -> bool:
        """To the longest-waiting poll, if one waits."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    def put(self, item: T) -> None:
        """To a waiting poll, else to the back of the queue."""
        if not self._hand(item):
            self.items.append(item)

    def remove(self, item: T) -> bool:
        try:
            self.items.remove(item)
        except ValueError:
            return False
        return True

    async def get(self, timeout: float) -> T | None:
        """The next item, waiting up to `timeout` seconds for one; None if none came."""
        if self.items:
            return self.items.popleft()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await asyncio.wait((waiter,), timeout=timeout)
        except BaseException:  # the poll itself was cancelled: what it got goes back
            if waiter.done() and not waiter.cancelled():
                self.put_back(waiter.result())
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
                self._forget(waiter)
        return None if waiter.cancelled() else waiter.result()

    def put_back(self, item: T) -> None:
        """An item a poll took but could not deliver: first in line again."""
        if not self._hand(item):
            self.items.appendleft(item)

    def wake_all(self) -> None:
        """Every waiting poll returns empty-handed (the edge is stopping)."""
        while self.waiters:
            self.waiters.popleft().cancel()

    def _forget(self, waiter: asyncio.Future[T]) -> None:
        try:
            self.waiters.remove(waiter)
        except ValueError:
            pass

    def drain(self) -> list[T]:
        """Everything queued, taken out (the tunnel is going)."""
        items = list(self.items)
        self.items.clear()
        return items
