"""Prober: probe a role's targets every interval and mark on the bus what it finds.

Every role that watches what it depends on runs one: the router its workers, the edge
its routers (and, in farm mode, a second one for the shared store), the worker its
backend, the cloud worker its backends. A Prober owns:

- the loop: a round (every target probed at once) every `interval` after the last one
  ended, started and stopped in the role's cleanup context;
- a probe's deadline, `timeout`: by default min(interval, 5 s) (probe_timeout), so a
  round is over before the next is due and a silent upstream is given up within 5 s;
- what "the probe failed" is: PROBE_FAILED, the one tuple, and the reason it is marked
  with (`says` + the exception). Anything else a probe raises is eldric's own bug: it is
  logged, blames no target, and does not end the loop;
- probing now, never twice at once: poke() (a failed request asks for a check), now()
  (a readiness hook asks and waits), round() (all targets now). A target being probed
  is not probed again: its running probe answers for every caller;
- cancellation: a caller that stops waiting leaves a probe that others share running;
  stop() ends the loop and every probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, NamedTuple, TypeVar

import aiohttp
import msgspec
import structlog

from eldric.bus import Bus, UpstreamState
from eldric.tasks import cancel, every, spawn

log = structlog.get_logger("eldric.bus")

T = TypeVar("T")  # a target: a worker, a router's or backend's state, a store, …

# "The target failed its probe": no connection, no answer in time, an answer that says
# unhealthy (a probe raises ValueError for that) or that cannot be read.
PROBE_FAILED: tuple[type[BaseException], ...] = (
    aiohttp.ClientError, OSError, TimeoutError, ValueError, msgspec.DecodeError,
    msgspec.ValidationError)


def probe_timeout(interval: float) -> float:
    """A probe's deadline for a period of `interval` seconds: the period, at most 5 s."""
    return min(interval, 5.0)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


class Verdict(NamedTuple):
    healthy: bool
    reason: str | None = None  # why not (a healthy verdict's is not kept)


HEALTHY = Verdict(True)

Probe = Callable[[T], Awaitable[Verdict]]


def on_bus(bus: Bus, state: Callable[[T], UpstreamState] | None = None
           ) -> Callable[[T, Verdict], None]:
    """The usual mark: bus.mark() on the target's state (the target itself by default)."""
    def mark(target: T, verdict: Verdict) -> None:
        up = target if state is None else state(target)
        bus.mark(up, verdict.healthy, verdict.reason)  # type: ignore[arg-type]
    return mark


class Prober(Generic[T]):
    def __init__(self, name: str, probe: Probe[T], *, targets: Callable[[], Iterable[T]],
                 interval: float, mark: Callable[[T, Verdict], None],
                 timeout: float | None = None, says: str = "") -> None:
        self.name = name  # names the loop's task
        self.probe = probe
        self.targets = targets  # asked at every round: targets come and go
        self.interval = interval
        self.timeout = probe_timeout(interval) if timeout is None else timeout
        self.mark = mark
        self.says = says  # how a failed probe's reason starts ("health check: ")
        self._running: dict[int, asyncio.Task[Verdict]] = {}  # id(target) -> its probe
        self._loop: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self, *, at_once: bool = False) -> None:
        """Rounds every interval, the first at once or (the role probed already) later."""
        self._stopped = False
        self._loop = spawn(every(self.interval, self.round, at_once=at_once), name=self.name)

    async def stop(self) -> None:
        self._stopped = True
        await cancel(self._loop)
        self._loop = None
        for task in list(self._running.values()):
            await cancel(task)

    def busy(self, target: T) -> bool:
        """Whether a probe of `target` is running."""
        task = self._running.get(id(target))
        return task is not None and not task.done()

    def poke(self, target: T, probe: Probe[T] | None = None) -> bool:
        """Probe `target` now, in the background (with `probe` instead of the periodic one:
        the router's confirming check). False, and nothing more, when it is being probed
        already (that probe's answer will do) or the prober has stopped."""
        if self._stopped or self.busy(target):
            return False
        self._start(target, probe or self.probe, self.timeout)
        return True

    async def now(self, target: T) -> Verdict:
        """Probe `target` now and wait for the answer (its running probe's, if any)."""
        return await asyncio.shield(self._start(target, self.probe, self.timeout))

    async def round(self, timeout: float | None = None) -> None:
        """Probe every target now (one being probed: that probe) and wait for them all."""
        deadline = self.timeout if timeout is None else timeout
        tasks = [self._start(t, self.probe, deadline) for t in self.targets()]
        if tasks:
            await asyncio.wait(tasks)  # unlike gather, a cancelled caller cancels none

    def _start(self, target: T, probe: Probe[T], timeout: float) -> asyncio.Task[Verdict]:
        key = id(target)  # the task holds the target, so its id is not reused meanwhile
        task = self._running.get(key)
        if task is None or task.done():
            task = spawn(self._probe(target, probe, timeout), name=f"{self.name}:probe")
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return task

    def _forget(self, key: int, task: asyncio.Task[Verdict]) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    async def _probe(self, target: T, probe: Probe[T], timeout: float) -> Verdict:
        try:
            async with asyncio.timeout(timeout):
                verdict = await probe(target)
        except PROBE_FAILED as exc:  # the deadline's TimeoutError too
            verdict = Verdict(False, self.says + describe(exc))
        except Exception as exc:  # noqa: BLE001 - a bug here is no verdict on the target
            log.error("probe_crashed", prober=self.name, error=describe(exc))
            return Verdict(False, f"the probe crashed: {describe(exc)}")
        self.mark(target, verdict)
        return verdict
