"""The swarm's settings: the router's `swarm` section (default strategy, bounds) and its
named ensembles (`ensembles`), both strict Structs like every config."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from eldric.config import Ms, flag_meta

# Every strategy a model name `swarm/<name>` may ask for (one file each in strategies/).
StrategyName = Literal["synthesize", "best_of_n", "vote", "critique", "debate"]
STRATEGIES: tuple[str, ...] = StrategyName.__args__  # type: ignore[attr-defined]
OnMemberError = Literal["skip", "fail"]


class MemberSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One member: a model the router routes, with its own sampling and system prompt."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    system: str | None = None


Member = str | MemberSpec  # a plain model name, or one with its own settings


class Bounds(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What one swarm may cost and wait for; an ensemble's own override the section's."""

    round_timeout_ms: Ms | None = None
    min_successful: Annotated[int, msgspec.Meta(ge=1)] | None = None
    on_member_error: OnMemberError | None = None
    max_concurrent: Annotated[int, msgspec.Meta(ge=1)] | None = None
    rounds: Annotated[int, msgspec.Meta(ge=1, le=10)] | None = None


class Ensemble(Bounds, kw_only=True, forbid_unknown_fields=True):
    """A named ensemble (`ensembles: {name: ...}`), asked for by its name as a model."""

    strategy: StrategyName = "synthesize"
    members: list[Member] = []  # empty: every distinct model the router can route
    judge: Member | None = None  # None: the first member


class SwarmConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The router's `swarm` section: what `swarm` alone means and every swarm's bounds."""

    default_strategy: Annotated[StrategyName, flag_meta(
        "the strategy of the model name `swarm` and of an X-Eldric-Swarm header naming none",
        flag="swarm-strategy")] = "synthesize"
    max_members: Annotated[int, msgspec.Meta(ge=1, le=64), flag_meta(
        "most members of a swarm (and of the default one: every distinct model routed)",
        flag="swarm-max-members")] = 5
    round_timeout_ms: Annotated[Ms, flag_meta(
        "how long a round waits for its members; later ones are dropped, ms",
        flag="swarm-round-timeout")] = 120_000
    min_successful: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "members that must answer a round, else the swarm fails",
        flag="swarm-min-successful")] = 1
    on_member_error: Annotated[OnMemberError, flag_meta(
        "skip: a failed member is dropped and recorded; fail: the swarm fails",
        flag="swarm-on-member-error")] = "skip"
    max_concurrent: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "members of one swarm asked at once", flag="swarm-max-concurrent")] = 8
    rounds: Annotated[int, msgspec.Meta(ge=1, le=10), flag_meta(
        "rounds of critique and debate", flag="swarm-rounds")] = 2


def member_spec(m: Member) -> MemberSpec:
    return MemberSpec(model=m) if isinstance(m, str) else m
