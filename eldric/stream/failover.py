"""Failover: try candidates one after another until one answers before its first byte.

Every hop that may send a request to more than one upstream runs its attempts through a
Failover: the router (its workers, ranked again before each attempt), the edge (its
routers), the cloud worker (the backends listing the model); next the swarm (one
Failover per member, run side by side) and the controller's jobs (one per target).
It owns what a failed attempt means:

- the retryable rule: no connection, a timeout, a broken reply, a 5xx or a 429 may be
  answered elsewhere (UpstreamFailure.retryable); anything else is the answer, relayed;
- marking down: an upstream that could not be connected to is out at once
  (Bus.mark_down); what else a failure says about it (ranked last, checked
  now) is the caller's judge(), since a client's request must not eject a healthy one;
- "not here" (a 501/405: the upstream does not serve the path) is tried elsewhere,
  counted against nobody, and relayed as it was sent when every upstream said so;
- "come back later" (a 503 or 429 with Retry-After: a model loading, a full queue) is
  tried elsewhere, and relayed as it was sent (its Retry-After, its progress) when every
  failed attempt said so, so the client learns when to come back;
- the retry metric (eldric_upstream_retries) and the 503 that names every attempt.

The caller says which candidates there are (in order, or one at a time through pick(),
which may say WAIT when every candidate is busy: then wait()) and how to call one
(call()). Hooks are methods of a subclass, not callbacks, so a request whose first
candidate answers makes no more awaits or allocations than a hand-written loop: no
closure or bound method is made, call() hands back its awaitable (no coroutine of its
own), the object has slots (it stands for the loop's failure list), and the failure
list is made on the first failure (bench/failover.py measures it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any, ClassVar, Final, Generic, NoReturn, Protocol, TypeVar

from eldric import trace
from eldric.bus import Bus, UpstreamState
from eldric.errors import UpstreamFailure, UpstreamUnavailable

C = TypeVar("C")  # a candidate: a worker, a router's state, a (backend, model), …
R = TypeVar("R")  # what an attempt that answered returns (a reply, for the handlers)

_LATER = (429, 503)  # with a Retry-After: "come back later", not "broken"
WAIT: Final[Any] = object()  # pick(): every candidate is at its limit; wait() for one


def hop_traced(hop: Any) -> bool:
    """An attribute read or two: is this request traced (eldric.trace)?"""
    return hop is not None and hop.span is not None


class Room(Protocol):
    """Where requests wait while every candidate is at its limit (the router's pool):
    woken after every attempt, since each may have freed a slot."""

    waiting: int

    async def notify(self) -> None: ...


class Failover(Generic[C, R]):
    """One request's attempts (over one or several run()s: the router's fallback models).

    `candidates` is the order to try them in (the edge's routers, the cloud worker's
    backends, a job's one target); a caller that ranks as it goes overrides pick()."""

    __slots__ = ("bus", "role", "room", "attempt", "attempts", "last", "failures",
                 "unsupported", "broken", "later", "busy", "_next", "hop", "span")

    # A "not here" is the answer at once, not tried elsewhere (the edge: a router's 501
    # says no worker of the cluster serves the path; another router would say the same).
    not_here_at_once: ClassVar[bool] = False

    def __init__(self, bus: Bus, role: str, candidates: Iterable[C] | None = None,
                 room: Room | None = None, hop: Any = None) -> None:
        self.bus = bus
        # The request's Hop (eldric.context) when it may be traced: each attempt is then
        # an `eldric.attempt` child span, `span` while it runs, which call() hands to
        # forward(span=) so the attempt's CLIENT span (and its traceparent) sits under it.
        self.hop = hop
        self.span: Any = None
        self.role = role  # the retry metric's label
        self.room = room
        self.attempt = 0  # attempts started by the current run(), this one included
        self.attempts = 0  # ... by every run()
        self.last: C | None = None  # the candidate tried last
        self.failures: list[str] | None = None  # "who: why", in order (made when needed)
        self.unsupported: UpstreamFailure | None = None  # the last "not here"
        self.broken = 0  # failed attempts that were not "not here"
        self.later: UpstreamFailure | None = None  # the last "come back later"
        self.busy = 0  # ... and how many of the broken said so
        self._next = None if candidates is None else iter(candidates)

    # ------------------------------------------------------------ what the caller says

    def pick(self) -> C | None:
        """Without `candidates`: the next one, None when there is none left, or WAIT."""
        raise NotImplementedError

    async def wait(self) -> C:
        """After pick() said WAIT: a candidate with room (or raise: the wait ran out)."""
        raise NotImplementedError

    def call(self, c: C) -> Awaitable[R]:
        """Start the attempt on c (forward(...), not awaited). Raises UpstreamFailure
        while nothing has been sent to the client."""
        raise NotImplementedError

    def name(self, c: C) -> str:
        """Who c is in the failure text and the metric."""
        return c.id  # type: ignore[attr-defined,no-any-return]

    def state(self, c: C) -> UpstreamState:
        return c.state  # type: ignore[attr-defined,no-any-return]

    def judge(self, c: C, exc: UpstreamFailure) -> None:
        """What else a failure says about c (the router ranks it last, the edge checks it
        now); called for every failed attempt, after an unreachable c is marked down."""

    def relay(self, exc: UpstreamFailure) -> R:
        """The reply for a failure that is the answer (not retryable, or "not here")."""
        return exc.response()  # type: ignore[return-value]

    # ------------------------------------------------------------ the loop

    async def run(self, limit: int | None = None) -> R | None:
        """Try candidates until one answers (its result), a failure is the answer (its
        relay()), or there is no candidate left or `limit` attempts were made: None,
        and then not_here() or exhausted() says what to answer."""
        self.attempt = 0
        given = self._next
        while limit is None or self.attempt < limit:
            c = next(given, None) if given is not None else self.pick()
            if c is None:
                return None
            if c is WAIT:
                c = await self.wait()
            self.attempt += 1
            self.attempts += 1
            self.last = c
            try:
                if hop_traced(self.hop):
                    return await self._traced(c)
                return await self.call(c)
            except UpstreamFailure as exc:
                if self.failed(c, exc):
                    return self.relay(exc)
            finally:
                room = self.room
                if room is not None and room.waiting:
                    await room.notify()  # a slot may be free now
        return None

    async def _traced(self, c: C) -> R:
        """call(c) inside its `eldric.attempt` span: upstream, attempt number, outcome
        (ok, or the failure's kind) and, for a failure, why (the retry's reason); ERROR
        unless it answered or the failure is the client's own (a 4xx relayed)."""
        span = trace.child(self.hop, "eldric.attempt",
                           {"eldric.upstream": self.name(c), "eldric.attempt": self.attempts,
                            "eldric.role": self.role})
        self.span = span
        try:
            result = await self.call(c)
        except UpstreamFailure as exc:
            span.set_attributes({"eldric.outcome": exc.kind,
                                 "eldric.retry_reason": exc.message,
                                 "eldric.retryable": exc.retryable})
            if exc.status:
                span.set_attribute("http.response.status_code", exc.status)
            if exc.retryable or exc.status is None or exc.status >= 500:
                span.fail(exc.message)
            span.__exit__(None, None, None)
            raise
        except BaseException as exc:  # cancelled, or a bug: ERROR with the exception
            span.__exit__(type(exc), exc, exc.__traceback__)
            raise
        finally:
            self.span = None
        span.set_attribute("eldric.outcome", "ok")
        span.__exit__(None, None, None)
        return result

    def failed(self, c: C, exc: UpstreamFailure) -> bool:
        """Count a failed attempt; True if it is the answer, False to try the next."""
        who = self.name(c)
        self.note(f"{who}: {exc.message}")
        self.bus.mark_down(self.state(c), exc)
        self.judge(c, exc)
        if not exc.retryable:
            return True
        if exc.kind == "unsupported":
            self.unsupported = exc
            if self.not_here_at_once:
                return True
        else:
            self.broken += 1
            if exc.status in _LATER and any(k.lower() == "retry-after" for k, _ in exc.headers):
                self.later = exc
                self.busy += 1
        self.bus.metrics.retries.labels(self.role, who).inc()
        return False

    def note(self, text: str) -> None:
        """A failure that was no attempt (the router: no healthy worker serves a model)."""
        if self.failures is None:
            self.failures = [text]
        else:
            self.failures.append(text)

    def not_here(self) -> R | None:
        """When every attempt said "not here": that answer, as it was sent; else None."""
        if self.unsupported is None or self.broken:
            return None
        return self.relay(self.unsupported)

    def come_back(self) -> R | None:
        """When every failed attempt said "come back later": the last, as sent; else None."""
        if self.later is None or self.busy != self.broken:
            return None
        return self.relay(self.later)

    def exhausted(self, what: str, *, none: str,
                  headers: dict[str, str] | None = None) -> NoReturn:
        """The 503: `what: ` and every failure in order, or `none` when there was none."""
        message = f"{what}: {'; '.join(self.failures)}" if self.failures else none
        raise UpstreamUnavailable(message, headers=headers)
