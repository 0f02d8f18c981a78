"""best_of_n: N answers; the judge picks one by index with a short reason (structured
output, validated). A judge that fails or answers no valid pick falls back to the stated
rule: the longest answer (the first of them on a tie), and the record says so."""

from __future__ import annotations

from eldric.roles.router.swarm import judge
from eldric.roles.router.swarm.run import Swarm
from eldric.roles.router.swarm.strategies.critique import no_tools  # the judge answers JSON
from eldric.roles.router.swarm.strategy import Ask, Chosen, Final, Result, Strategy

FALLBACK_RULE = "the longest answer (the first of them on a tie)"


class BestOfN(Strategy):
    name = "best_of_n"
    description = "N answers; the judge picks one by index with a reason"

    async def run(self, swarm: Swarm) -> Final:
        ok = await swarm.fanout(swarm.asks())
        lone = swarm.lone(ok)
        if lone is not None:
            swarm.choose(0, lone.reason, "only answer")
            return lone
        verdict = await swarm.ask(Ask(swarm.judge, judge.pick_messages(swarm.messages, ok),
                                      "judge", -1, {"response_format": judge.PICK_FORMAT,
                                                    "temperature": 0, **no_tools(swarm)}))
        pick = judge.read_pick(verdict.text, len(ok)) if verdict.ok else \
            f"the judge failed: {verdict.error}"
        if isinstance(pick, str):
            i = _fallback(ok)
            swarm.choose(ok[i].ask.index, f"{pick}; fell back to {FALLBACK_RULE}", "fallback")
            return Chosen(ok[i], swarm.choice["reason"])  # type: ignore[index]
        swarm.choose(ok[pick.index].ask.index, pick.reason, "judge")
        return Chosen(ok[pick.index], pick.reason)


def _fallback(ok: list[Result]) -> int:
    best = 0
    for i, r in enumerate(ok):
        if len(r.text) > len(ok[best].text):
            best = i
    return best
