"""spawn(): the one way eldric starts a background task.

asyncio keeps only a weak reference to tasks, so a fire-and-forget task can be garbage
collected mid-flight; spawn() holds a strong one until the task ends, names it for
debugging, and logs an exception instead of letting it vanish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn

import structlog

log = structlog.get_logger("eldric.tasks")

_running: set[asyncio.Task[Any]] = set()


def _done(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task_failed", task=task.get_name(), error=repr(exc))


def spawn(coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(_done)
    return task


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task and wait until it has really stopped."""
    if task is None or task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:  # already logged by _done; a stopping task must not raise
        log.debug("task_stopped_with_error", task=task.get_name(), error=repr(exc))


async def every(seconds: float, fn: Callable[[], Awaitable[Any]], *,
                at_once: bool = False) -> NoReturn:
    """Run fn() every `seconds` (counted from the end of the last run, so two never
    overlap), first at once or after one period, until cancelled."""
    if at_once:
        await fn()
    while True:
        await asyncio.sleep(seconds)
        await fn()
