"""The router's scorers around its strategy, in the order they apply to one request.

    candidates (healthy, serving the model and the path)
      -> knowledge: the prompt's theme narrows them to the workers tagged theme:<id>
         (none tagged, or no theme above the threshold: unchanged)
      -> session affinity: the session's worker, while healthy and under its load guard
         (then the AI is not asked: its answer could change nothing)
      -> the AI decider (mode advisory/autonomous): picks one within a hard deadline;
         a new (or moved) session goes where it picks, and stays there
      -> the strategy ranks the rest (cache_aware reads the prompt's prefix tree)

A preferred worker (ctx.prefer: the session's, else the AI's in autonomous mode) goes
first when it is live and has room; otherwise the strategy's ranking stands and the
reason says so. A swarm's member (member=True) is one of several calls of one client
request: knowledge narrows its candidates, but it neither sticks to the client's session
(its members would all land on one worker) nor pays for an AI decision of its own.
Each scorer is None when it is off, and `active` is False when every one
is: route() then pays one attribute check (the hot path reads no body).
"""

from __future__ import annotations

from typing import Any, Protocol

from eldric.roles.router.context import RouteContext
from eldric.roles.router.pool import Worker


class Narrower(Protocol):
    """Knowledge routing (eldric.roles.router.knowledge). Async: its optional embedding
    scorer asks a model (the keyword scorer alone never suspends)."""

    async def narrow(self, candidates: list[Worker], ctx: RouteContext) -> list[Worker]: ...


class Decider(Protocol):
    """AI routing (eldric.roles.router.ai): sets ctx.prefer / prefer_reason / decided_by
    in autonomous mode; in advisory mode only counts. Never raises, never outlasts its
    deadline."""

    async def decide(self, candidates: list[Worker], ctx: RouteContext) -> None: ...

    def chosen(self, worker: Worker, ctx: RouteContext) -> None: ...  # advice vs route


class Affinity(Protocol):
    """Session affinity (eldric.roles.router.session)."""

    def prefer(self, candidates: list[Worker], ctx: RouteContext) -> bool:
        """Set ctx.prefer to the session's worker; True when the session stays there."""
        ...

    def chosen(self, worker: Worker, ctx: RouteContext) -> None: ...


class Thinking:
    __slots__ = ("knowledge", "ai", "sessions", "forecast", "active")

    def __init__(self) -> None:
        self.knowledge: Narrower | None = None
        self.ai: Decider | None = None
        self.sessions: Affinity | None = None
        self.forecast: Any = None  # eldric.roles.router.predict: counts, never routes
        self.active = False

    def update(self) -> None:
        """Call after switching a scorer on or off (at build, or POST /api/v1/ai/configure)."""
        self.active = any(s is not None for s in (self.knowledge, self.ai, self.sessions))

    async def before(self, candidates: list[Worker], ctx: RouteContext,
                     member: bool = False) -> list[Worker]:
        """The candidates the strategy will rank, and ctx's preference, for one model."""
        if self.knowledge is not None:
            candidates = await self.knowledge.narrow(candidates, ctx)
        if member:
            return candidates
        if self.sessions is not None and self.sessions.prefer(candidates, ctx):
            return candidates  # a session's worker beats any pick: no decision to pay for
        if self.ai is not None:
            await self.ai.decide(candidates, ctx)  # places a new session when it picks
        return candidates

    def chosen(self, worker: Worker, ctx: RouteContext, member: bool = False) -> None:
        if member:
            return
        if self.ai is not None:
            self.ai.chosen(worker, ctx)
        if self.sessions is not None:
            self.sessions.chosen(worker, ctx)


def put_first(ranked: list[Worker], ctx: RouteContext, cap: int | None,
              reason: str) -> tuple[list[Worker], str, bool]:
    """The ranking with ctx.prefer first when it is among them and has room; whether it
    was, and the reason to state."""
    want = ctx.prefer
    for i, w in enumerate(ranked):
        if w.id == want:
            if not w.has_room(cap):
                return ranked, f"{reason}; preferred {want} is full", False
            if i == 0:
                return ranked, ctx.prefer_reason or reason, True
            return [w, *ranked[:i], *ranked[i + 1:]], ctx.prefer_reason or reason, True
    return ranked, f"{reason}; preferred {want} is not available", False
