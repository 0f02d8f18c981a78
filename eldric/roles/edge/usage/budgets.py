"""Budgets per client: reserve before a request, settle when its reply ended.

reserve() refuses a request that would exceed a budget (429 budget_exceeded /
token_rate_limit, 403 model_not_allowed) and holds its reservation (the request's
max_tokens, or a configured default, plus its prompt's estimate) so concurrent requests
cannot overshoot by more than one reservation; settle() replaces the hold by what the
reply really used. A client with no budget costs one look at its fields.

Where the counts live: this process (budgets_local), or in farm mode the shared Redis
(budgets_redis), falling back to this edge's own counts while Redis is unreachable
(fail open per edge, /health degraded: farm.Farm). A hold settles where it was taken; a
shared hold whose settle cannot reach Redis keeps its reservation counted there.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

import structlog

from eldric.errors import EldricError, RateLimited
from eldric.roles.edge.clients import Client
from eldric.roles.edge.limits import new_member
from eldric.roles.edge.usage import estimate
from eldric.roles.edge.usage.budgets_local import LocalBudgets, LocalTicket
from eldric.roles.edge.usage.caps import COST_KINDS, TPM, Caps, Period, Verdict
from eldric.roles.edge.usage.record import Tokens
from eldric.tasks import spawn

if TYPE_CHECKING:
    from eldric.bus.metrics import Cached
    from eldric.roles.edge.farm import Farm
    from eldric.roles.edge.usage.budgets_redis import RedisBudgets

log = structlog.get_logger("eldric.edge")

REMAINING = "X-Eldric-Budget-Remaining"
Price = Callable[[str, Tokens], "float | None"]  # model, tokens -> USD; None: unpriced


def unpriced(model: str, tokens: Tokens) -> float | None:
    return None


@dataclass(slots=True)
class Hold:
    """A request's reservation against its client's budgets (None: nothing limited)."""

    client: str | None = None
    model: str = ""
    tokens: int = 0  # reserved
    headers: dict[str, str] = field(default_factory=dict)  # X-Eldric-Budget-Remaining, …
    cost: float | None = None  # reserved (None: unpriced, or no cost budget)
    period: Period | None = None
    local: LocalTicket | None = None  # taken in this process
    member: str = ""  # taken in Redis, under this member


class Budgets:
    def __init__(self, window_ms: int = 60_000, default_max_tokens: int = 1024,
                 price: Price = unpriced, farm: Farm | None = None,
                 shared: RedisBudgets | None = None, refused: Cached | None = None) -> None:
        self.refused = refused  # eldric_edge_budget_refused{kind}
        self.window_ms = window_ms
        self.default_max_tokens = default_max_tokens
        self.price = price
        self.farm = farm
        self.shared = shared
        self.local = LocalBudgets(window_ms)

    async def reserve(self, client: Client | None, model: str, max_tokens: int | None,
                      prompt: bytes | int = 0) -> Hold:
        """`prompt`: the request's body (its prompt is estimated: usage/estimate.py, only
        for a client with a budget) or a count of prompt tokens."""
        if client is None:
            return Hold()
        self.allow(client, model)
        caps = Caps.of(client)
        if caps is None:
            return Hold()
        prompt_tokens = prompt if isinstance(prompt, int) else estimate.prompt_tokens(prompt)
        # a negative max_tokens (an upstream may take -5) reserves the default: a
        # negative reservation would be room for every request in flight beside it
        completion = max_tokens if max_tokens is not None and max_tokens >= 0 \
            else self.default_max_tokens
        tokens = prompt_tokens + completion
        cost = None
        if caps.cost_per_day is not None or caps.cost_per_month is not None:
            cost = self.price(model, Tokens(prompt=prompt_tokens, completion=completion))
        period = Period.now()
        hold = Hold(client.name, model, tokens, cost=cost, period=period)
        verdict = await self._take(client.name, caps, hold)
        headers = {REMAINING: verdict.header()}
        if not verdict.allowed:
            self._count(verdict.kind or "")
            raise _refusal(client, caps, verdict, period, headers)
        hold.headers = headers
        return hold

    def _count(self, kind: str) -> None:
        if self.refused is not None:
            self.refused.labels(kind).inc()

    def allow(self, client: Client, model: str) -> None:
        """403 model_not_allowed unless one of the client's allowed_models globs matches."""
        if client.allowed_models is not None and not any(
                fnmatchcase(model, p) for p in client.allowed_models):
            self._count("model")
            raise EldricError(f"model {model!r} is not allowed for client {client.name!r}",
                              status=403, code="model_not_allowed", param="model")

    async def _take(self, name: str, caps: Caps, hold: Hold) -> Verdict:
        assert hold.period is not None
        period = hold.period

        async def here() -> Verdict:
            verdict, hold.local = self.local.reserve(name, caps, hold.tokens, hold.cost, period)
            return verdict

        if self.shared is None or self.farm is None:
            return await here()
        member = new_member()  # a retried script takes nothing twice
        shared = self.shared
        asking = asyncio.ensure_future(self.farm.through(
            lambda: shared.reserve(name, caps, hold.tokens, hold.cost, period, member), here))
        try:
            verdict, in_redis = await asyncio.shield(asking)
        except asyncio.CancelledError:
            # The client left while Redis was asked: what the script takes is given back
            # when its answer comes (it stayed counted until the day's end).
            asking.add_done_callback(lambda done: self._give_back(done, hold, member))
            raise
        if in_redis and verdict.allowed:
            hold.member = member
        return verdict

    def _give_back(self, done: asyncio.Future[tuple[Verdict, bool]], hold: Hold,
                   member: str) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        verdict, in_redis = done.result()
        if not verdict.allowed:
            return
        if in_redis:
            hold.member = member
        spawn(self.settle(hold, Tokens(), 0.0), name="budget-give-back")

    async def usage(self, clients: list[Client]) -> dict[str, dict[str, float] | None]:
        """What each client with a budget has spent of it (reservations in flight
        included): {tokens_today, cost_today, cost_month}; None for a client without one
        (nothing counted here: its totals are /api/v1/usage's). Raises the store's error
        in farm mode (the admin API's farm.admin makes it a 503)."""
        period = Period.now()
        names = [c.name for c in clients if Caps.of(c) is not None]
        if self.shared is not None:
            counted = await self.shared.spent(names, period) if names else {}
        else:
            counted = {n: self.local.spent_by(n, period) for n in names}
        return {c.name: (dict(zip(("tokens_today", "cost_today", "cost_month"),
                                  counted[c.name])) if c.name in counted else None)
                for c in clients}

    async def settle(self, hold: Hold, tokens: Tokens, cost: float | None) -> None:
        """Never raises: it runs after the reply, in the request's finally."""
        if hold.client is None or hold.period is None:
            return
        used = tokens.total
        spent = cost if hold.cost is not None else None  # a cost budget counts priced only
        ticket, member, hold.local, hold.member = hold.local, hold.member, None, ""  # once
        try:
            if ticket is not None:
                delta_cost = None if spent is None or hold.cost is None else spent - hold.cost
                self.local.settle(hold.client, ticket, used - hold.tokens, delta_cost)
            elif member and self.shared is not None and self.farm is not None:
                shared, p = self.shared, hold.period
                await self.farm.through(
                    lambda: shared.settle(hold.client or "", member, p.day, p.month,
                                          used, spent), _nothing)
        except Exception:  # a settle that fails must not turn a served reply into an error
            log.exception("budget_settle_failed", client=hold.client)


async def _nothing() -> None:
    return None


def _refusal(client: Client, caps: Caps, verdict: Verdict, period: Period,
             headers: dict[str, str]) -> RateLimited:
    kind = verdict.kind or ""
    if kind == TPM:
        retry = verdict.retry_after
        what = f"token rate limit of {caps.tpm} tokens per window"
        code = "token_rate_limit"
    else:
        retry = period.month_left if kind == "cost_per_month" else period.day_left
        limit = caps.limits()[kind]
        what = (f"budget {kind} of {limit:g} USD" if kind in COST_KINDS
                else f"budget {kind} of {limit} tokens")
        code = "budget_exceeded"
    wait = max(1, math.ceil(retry))
    return RateLimited(f"client {client.name!r} has spent its {what}; it frees in {_span(wait)}",
                       code=code, headers={**headers, "Retry-After": str(wait)})


def _span(s: int) -> str:
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"
