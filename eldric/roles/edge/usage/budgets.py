"""Budgets per client: reserve before a request, settle when its reply ended.

The face the handlers call (issue 19 fills it in): reserve() refuses a request that
would exceed a budget (429 budget_exceeded / token_rate_limit, 403 model_not_allowed) and
holds its reservation (the request's max_tokens, or a configured default) so concurrent
requests cannot overshoot by more than one reservation; settle() replaces the hold by
what the reply really used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eldric.roles.edge.clients import Client
from eldric.roles.edge.usage.record import Tokens


@dataclass(slots=True)
class Hold:
    """A request's reservation against its client's budgets (None: nothing limited)."""

    client: str | None = None
    model: str = ""
    tokens: int = 0  # reserved
    headers: dict[str, str] = field(default_factory=dict)  # X-Eldric-Budget-Remaining, …


class Budgets:
    async def reserve(self, client: Client | None, model: str, max_tokens: int | None) -> Hold:
        return Hold()

    async def settle(self, hold: Hold, tokens: Tokens, cost: float | None) -> None:
        return None
