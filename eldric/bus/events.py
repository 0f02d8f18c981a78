"""Events that components publish and subscribe to, in process.

A subscriber that raises is logged and isolated: publishing never fails and never takes a
request down. Async subscribers are started as background tasks.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import structlog

from eldric.tasks import spawn

log = structlog.get_logger("eldric.bus")

Subscriber = Callable[[str, dict[str, Any]], Any]


class Events:
    def __init__(self) -> None:
        self._subs: dict[str, list[Subscriber]] = defaultdict(list)

    def subscribe(self, name: str, fn: Subscriber) -> Callable[[], None]:
        """Call fn(name, fields) on every event `name` ("*" for all). Returns unsubscribe."""
        self._subs[name].append(fn)
        return lambda: self._subs[name].remove(fn) if fn in self._subs[name] else None

    def emit(self, name: str, **fields: Any) -> None:
        for fn in (*self._subs.get(name, ()), *self._subs.get("*", ())):
            try:
                result = fn(name, fields)
                if inspect.isawaitable(result):
                    spawn(_guard(fn, name, result), name=f"event:{name}")
            except Exception as exc:
                log.error("event_subscriber_failed", event_name=name,
                          subscriber=getattr(fn, "__qualname__", repr(fn)), error=repr(exc))


async def _guard(fn: Subscriber, name: str, awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.error("event_subscriber_failed", event_name=name,
                  subscriber=getattr(fn, "__qualname__", repr(fn)), error=repr(exc))
