"""debate: every member answers (round 1), then argues for `rounds` - 1 more rounds,
each member seeing its own last turn and the others' last turns; the judge reads the
final positions and gives the verdict, streamed to the client as it writes it.

A member that fails a round is dropped from the later ones (recorded); a later round in
which fewer than min_successful answer ends the debate, and the verdict is given on the
last round that had them (with on_member_error fail, it fails the swarm). One position
left skips the judge. A judge that fails before its first token falls back to the
stated rule: the most common final position (FALLBACK_RULE). Tool calls cannot be argued over: a first-round answer with tool
calls is refused with a 400 that says so (best_of_n and vote return tool calls)."""

from __future__ import annotations

from eldric.roles.router.swarm import judge
from eldric.roles.router.swarm.run import Swarm
from eldric.roles.router.swarm.strategies.critique import no_tools
from eldric.roles.router.swarm.strategies.vote import by_key
from eldric.roles.router.swarm.strategy import (Ask, Chosen, Final, Generate, Messages,
                                                Result, Strategy, SwarmFailed, SwarmRefused)

FALLBACK_RULE = ("the most common final position (normalised exact match; a tie: the "
                 "earliest member's)")

TURN = (
    "The other participants answered:\n\n{others}\n\nConsider their arguments. Where "
    "they are right, change your answer; where they are wrong, say why. Then give your "
    "answer to the question again.")

VERDICT_SYSTEM = (
    "You are the judge of a debate. Several participants answered the user's last "
    "message and argued over their answers. Weigh their final positions and give the "
    "user the correct, complete answer directly. Do not mention the debate or the "
    "participants.")


def turn_messages(client: Messages, own: Result, others: list[Result]) -> Messages:
    """A member's next turn: the conversation, its own last turn, the others' last."""
    return [*client, {"role": "assistant", "content": own.text},
            {"role": "user", "content": TURN.format(others=judge.numbered(others))}]


def verdict_messages(client: Messages, positions: list[Result]) -> Messages:
    convo = [m for m in client if m.get("role") != "system"]
    system = [m for m in client if m.get("role") == "system"]
    note = (f"The participants' final positions:\n\n{judge.numbered(positions)}\n\n"
            "Give the final answer to the last message.")
    return [{"role": "system", "content": VERDICT_SYSTEM}, *system, *convo,
            {"role": "user", "content": note}]


class Debate(Strategy):
    name = "debate"
    description = ("members argue for `rounds` rounds, each seeing the others' last turn; "
                   "the judge gives the verdict")
    min_members = 2

    async def run(self, swarm: Swarm) -> Final:
        turns = await swarm.fanout(swarm.asks(stage="round 1"))
        if any(t.tool_calls for t in turns):
            raise SwarmRefused(
                "swarm/debate cannot argue over tool calls: a member answered with tool "
                "calls; ask swarm/best_of_n or swarm/vote, which return the chosen "
                "member's tool calls unchanged", param="tools")
        held = 1  # the last round whose positions the verdict is on
        for r in range(2, swarm.rounds + 1):
            if len(turns) < 2:
                break  # nobody left to argue with
            asks = [Ask(t.ask.member, turn_messages(swarm.messages, t,
                                                    [o for o in turns if o is not t]),
                        f"round {r}", t.ask.index, no_tools(swarm)) for t in turns]
            try:
                turns = await swarm.fanout(asks)
            except SwarmFailed:
                if swarm.limits.on_member_error == "fail":
                    raise
                break  # too few answered this round: the verdict is on the last one
            held = r
        lone = swarm.lone(turns)
        if lone is not None:
            swarm.choose(lone.result.ask.index, lone.reason, "only answer")
            return lone
        return Generate(Ask(swarm.judge, verdict_messages(swarm.messages, turns), "verdict",
                            -1, no_tools(swarm)),
                        f"the judge's verdict on {len(turns)} positions after round {held}",
                        Chosen(turns[_most_common(turns)],
                               f"the judge failed: fell back to {FALLBACK_RULE}"))


def _most_common(turns: list[Result]) -> int:
    groups = by_key(turns)
    return max(groups, key=lambda g: (len(g), -g[0]))[0]
