"""One swarm request as a strategy sees it (Swarm): the client's request, the members,
the judge, the bounds, and the helpers a strategy calls (ask, fanout, progress); it keeps
the record of every call for the `eldric` field, the usage sum and the metrics."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import structlog

from eldric.exchange import LaneRequest, RawPairs
from eldric.roles.router.state import RouterState
from eldric.roles.router.swarm import members as member_calls
from eldric.roles.router.swarm import spans
from eldric.roles.router.swarm.config import MemberSpec
from eldric.roles.router.swarm.fanout import fanout
from eldric.roles.router.swarm.strategy import Ask, Chosen, Messages, Result, SwarmFailed

log = structlog.get_logger("eldric.router.swarm")


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds one swarm runs with (its ensemble's, else the router's swarm section)."""

    round_timeout: float  # seconds
    min_successful: int
    on_member_error: str  # skip | fail
    max_concurrent: int
    rounds: int


class Swarm:
    """What a strategy is given. Members are asked through the router's routing
    (members.py); every Result lands in `calls`, in the order the calls ended."""

    def __init__(self, request: LaneRequest, rs: RouterState, raw: RawPairs,
                 client: dict[str, Any], *, strategy: str, label: str,
                 members: list[MemberSpec], judge: MemberSpec, limits: Limits) -> None:
        self.request = request
        self.rs = rs
        self.raw = raw  # the client's headers for members, without X-Eldric-Swarm
        self.client = client  # the client's request, decoded
        self.strategy = strategy
        self.label = label  # the model name the client asked for
        self.members = members
        self.judge = judge
        self.limits = limits
        self.calls: list[Result] = []
        self.choice: dict[str, Any] | None = None  # the judge's pick: index, reason, how
        self.events: asyncio.Queue[dict[str, Any]] | None = None  # progress, when streamed
        self.started = time.perf_counter()
        self._at: dict[int, str] = {}  # id(ask) -> the worker its call is on now

    # ------------------------------------------------------------ what strategies read

    @property
    def messages(self) -> Messages:
        return self.client["messages"]  # type: ignore[no-any-return]

    @property
    def rounds(self) -> int:
        return self.limits.rounds

    def asks(self, messages: Messages | None = None, stage: str = "answer") -> list[Ask]:
        """One Ask per member, every one with `messages` (default: the client's)."""
        msgs = self.messages if messages is None else messages
        return [Ask(m, msgs, stage, i) for i, m in enumerate(self.members)]

    # ------------------------------------------------------------ what strategies call

    async def ask(self, ask: Ask, timeout: float | None = None) -> Result:
        """One member's whole answer, within the round timeout; recorded; never raises
        for the member's failure (a failed Result: see .ok and .error)."""
        t = self.limits.round_timeout if timeout is None else timeout
        r = (await fanout([ask], self._call, timeout=t, max_concurrent=1,
                          fail_fast=False))[0]
        if r.outcome in ("timeout", "cancelled"):  # cut short: _call did not record it
            r.worker = self._at.get(id(r.ask))
            self._record(r)
        return r

    async def fanout(self, asks: list[Ask]) -> list[Result]:
        """Every ask in parallel within the bounds; the answers that are ok, in the asks'
        order. Raises SwarmFailed (naming each failure) when on_member_error is fail and
        one failed, or fewer than min_successful answered."""
        lim = self.limits
        results = await fanout(asks, self._call, timeout=lim.round_timeout,
                               max_concurrent=lim.max_concurrent,
                               fail_fast=lim.on_member_error == "fail")
        for r in results:
            if r.outcome in ("timeout", "cancelled"):
                r.worker = self._at.get(id(r.ask))
                self._record(r)  # the ones that ended were recorded as they did
        ok = [r for r in results if r.ok]
        bad = [r for r in results if not r.ok]
        if bad and lim.on_member_error == "fail":
            raise self.failed(f"a member failed (on_member_error: fail)", results)
        if len(ok) < min(lim.min_successful, len(asks)):
            raise self.failed(f"{len(ok)} of {len(asks)} members answered, "
                              f"{min(lim.min_successful, len(asks))} required", results)
        return ok

    def progress(self, event: str, **data: Any) -> None:
        """A progress event for a streaming client (`event: eldric.swarm`); nothing when
        the reply is not streamed."""
        if self.events is not None:
            self.events.put_nowait({"type": event, **data})

    def choose(self, index: int, reason: str, how: str = "judge") -> None:
        """Record the judge's (or the fallback rule's: `how`) choice of a member."""
        self.choice = {"index": index, "reason": reason, "by": how}

    def failed(self, what: str, results: list[Result] | None = None) -> SwarmFailed:
        """The one clear error: `what`, then each failed call's member and why."""
        bad = [r for r in (self.calls if results is None else results) if not r.ok]
        why = "; ".join(f"{r.ask.stage} member {r.ask.index} ({r.model}): {r.error}"
                        for r in bad)
        return SwarmFailed(f"swarm/{self.strategy} could not answer: {what}"
                           + (f": {why}" if why else ""))

    @staticmethod
    def lone(ok: list[Result]) -> Chosen | None:
        """One survivor skips the judge: its answer is the answer."""
        return Chosen(ok[0], "the only member that answered") if len(ok) == 1 else None

    # ------------------------------------------------------------ inside

    async def _call(self, ask: Ask) -> Result:
        self.progress("member_started", stage=ask.stage, member=ask.index,
                      model=ask.member.model)
        with spans.member(self.request, ask, self.strategy) as span:
            try:
                r = await member_calls.answer(
                    self.request, self.rs, self.raw, self.client, ask,
                    lambda worker: self._at.__setitem__(id(ask), worker), parent=span)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not hang or crash the others: recorded
                log.exception("swarm_member_crashed", model=ask.member.model)
                r = Result(ask, ok=False, outcome="error",
                           error=f"internal error ({type(exc).__name__})")
            spans.settle(span, r)
        self._record(r)
        return r

    def _record(self, r: Result) -> None:
        self.calls.append(r)
        self.progress("member_done", stage=r.ask.stage, member=r.ask.index, model=r.model,
                      outcome=r.outcome, latency_ms=round(r.latency_ms, 1),
                      worker=r.worker)
