"""synthesize: every member answers in parallel; the synthesis model merges the answers,
and its merge is streamed to the client as it writes it."""

from __future__ import annotations

from eldric.roles.router.swarm import judge
from eldric.roles.router.swarm.run import Swarm
from eldric.roles.router.swarm.strategy import Ask, Final, Generate, Strategy, SwarmRefused


class Synthesize(Strategy):
    name = "synthesize"
    description = "members answer in parallel; the synthesis model merges their answers"

    async def run(self, swarm: Swarm) -> Final:
        ok = await swarm.fanout(swarm.asks())
        if any(r.tool_calls for r in ok):
            raise SwarmRefused(
                "swarm/synthesize cannot merge tool calls: a member answered with tool "
                "calls; ask swarm/best_of_n or swarm/vote, which return the chosen "
                "member's tool calls unchanged", param="tools")
        lone = swarm.lone(ok)
        if lone is not None:
            return lone
        return Generate(Ask(swarm.judge, judge.synthesis_messages(swarm.messages, ok),
                            "synthesis", -1),
                        f"merged {len(ok)} answers")
