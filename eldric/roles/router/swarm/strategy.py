"""What a strategy is, and what it is given: the interface every file of strategies/
implements.

A strategy is a subclass of Strategy with a `name` and one coroutine, run(swarm). It asks
members through the Swarm it is given (never an HTTP call: each ask is routed by the
router's own routing, eldric.roles.router.swarm.members), in parallel with
swarm.fanout() (bounded: round_timeout_ms, min_successful, on_member_error,
max_concurrent; every failure recorded) or one at a time with swarm.ask(), and returns
the Final answer:

- Chosen(result, reason): a member's finished answer, returned as it is (best_of_n's
  pick, a vote's majority, the one survivor that skips the judge): its message, tool
  calls included, goes to the client unchanged;
- Generate(ask): the final answer is this last call (the synthesis, the judge's verdict,
  the last revision), streamed to the client token by token as the model generates it.

Failure text never enters an answer: a failed Result carries `error` for the record
(the `eldric` field) and no text; the prompts a strategy builds take only results that
are `ok`. A strategy raises SwarmFailed (swarm.failed()) when it cannot answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from eldric.errors import BadRequest, UpstreamUnavailable
from eldric.roles.router.swarm.config import MemberSpec

if TYPE_CHECKING:
    from eldric.roles.router.swarm.run import Swarm

Messages = list[dict[str, Any]]


@dataclass(slots=True)
class Ask:
    """One call to one member: who, with which messages, in which stage of the flow
    (`stage` names it in the record and the progress events: "answer", "judge",
    "critique", "round 2"...), with which extra request fields (response_format, tools)."""

    member: MemberSpec
    messages: Messages
    stage: str = "answer"
    index: int = 0  # the member's position in the swarm (0-based), for the record
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Result:
    """What one Ask got: `ok` with the assistant message, or a failure and why."""

    ask: Ask
    ok: bool
    message: dict[str, Any] | None = None  # the assistant message ({"role", "content", ...})
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    worker: str | None = None
    latency_ms: float = 0.0
    outcome: str = "ok"  # ok | error | timeout | cancelled | skipped
    error: str | None = None  # why it failed: for the record, never for an answer

    @property
    def text(self) -> str:
        """The answer's text ("" for a failure or a tool-call-only answer)."""
        if not self.ok or self.message is None:
            return ""
        content = self.message.get("content")
        if isinstance(content, list):  # content parts
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content or ""

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        return (self.message or {}).get("tool_calls") or None

    @property
    def model(self) -> str:
        return self.ask.member.model


@dataclass(slots=True)
class Chosen:
    """The final answer is this member's finished answer, as it is."""

    result: Result
    reason: str = ""


@dataclass(slots=True)
class Generate:
    """The final answer is this call, streamed as the model generates it. `fallback`:
    the answer if that call fails before its first token (the judge of a debate that is
    down, a last revision that fails), else the swarm fails."""

    ask: Ask
    reason: str = ""
    fallback: Chosen | None = None


Final = Chosen | Generate


class SwarmFailed(UpstreamUnavailable):
    """The swarm could not answer: the message names every member's failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="swarm_failed")


class SwarmRefused(BadRequest):
    """A swarm request the router will not run (a 400: tool calls synthesize cannot
    merge, a strategy that needs more members than it has)."""

    code = "swarm_refused"


class Strategy:
    """One way to combine members' answers. Subclass it in strategies/<name>.py and
    list it in strategies/__init__.py."""

    name: ClassVar[str]
    # What the progress events and GET /api/v1/swarm say of it.
    description: ClassVar[str] = ""
    # Fewest members it can work with (critique needs two).
    min_members: ClassVar[int] = 1

    async def run(self, swarm: Swarm) -> Final:
        raise NotImplementedError
