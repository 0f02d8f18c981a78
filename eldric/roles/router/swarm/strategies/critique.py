"""critique: member A (the first) answers, the critics (the others: B, ...) critique the
answer in parallel, A revises it seeing every critique; `rounds` times. The last revision
is streamed to the client as A writes it.

A failing member does not sink the answer: if A does not answer, the next member that
does becomes the author; a round whose critics all fail, or a revision that fails, ends
the rounds and the answer so far is returned (recorded, with why); so does a last
revision that fails before its first token. An author that answers
with tool calls is returned as it is: tool calls are not critiqued. With on_member_error
fail, any failure fails the swarm."""

from __future__ import annotations

from typing import Any

from eldric.roles.router.swarm import judge
from eldric.roles.router.swarm.run import Swarm
from eldric.roles.router.swarm.strategy import (Ask, Chosen, Final, Generate, Messages,
                                                Result, Strategy, SwarmFailed)

CRITIC_SYSTEM = (
    "You are a critic. Read the question and the answer to it. Point out the answer's "
    "errors, omissions and unclear parts, briefly and concretely. Do not rewrite the "
    "answer. If it is correct and complete, say so.")

REVISE = (
    "{who} critiqued your answer:\n\n{critiques}\n\nWrite your answer again, improved "
    "where the critique is right. Reply with the revised answer only, without mentioning "
    "the critique.")


def no_tools(swarm: Swarm) -> dict[str, Any]:
    """The extra fields of a call that must answer in text although the client offered
    tools (a critique, a revision, a debate turn): tool_choice none. Nothing without
    tools: tool_choice alone is refused by the OpenAI API."""
    return {"tool_choice": "none"} if swarm.client.get("tools") else {}


def critique_messages(client: Messages, answer: str) -> Messages:
    return [{"role": "system", "content": CRITIC_SYSTEM},
            {"role": "user", "content": f"Question:\n{judge.question(client)}\n\n"
                                        f"Answer:\n{answer.strip()}"}]


def revise_messages(client: Messages, answer: str, critiques: list[Result]) -> Messages:
    """The author's conversation, its answer, then the critiques to act on."""
    shown = critiques[0].text.strip() if len(critiques) == 1 else judge.numbered(critiques)
    who = "A reviewer" if len(critiques) == 1 else f"{len(critiques)} reviewers"
    return [*client, {"role": "assistant", "content": answer},
            {"role": "user", "content": REVISE.format(who=who, critiques=shown)}]


class Critique(Strategy):
    name = "critique"
    description = "member A answers, the others critique, A revises, for `rounds` rounds"
    min_members = 2

    async def run(self, swarm: Swarm) -> Final:
        skip = swarm.limits.on_member_error == "skip"
        author, answer = await _author(swarm, skip)
        critics = [(i, m) for i, m in enumerate(swarm.members) if i > author.index]
        if answer.tool_calls:
            return Chosen(answer, "the author answered with tool calls: returned as they are")
        if not critics:
            return Chosen(answer, "no member left to critique the answer")
        for r in range(1, swarm.rounds + 1):
            asks = [Ask(m, critique_messages(swarm.messages, answer.text), f"critique {r}",
                        i, no_tools(swarm)) for i, m in critics]
            try:
                critiques = [c for c in await swarm.fanout(asks) if c.text.strip()]
            except SwarmFailed:
                if not skip:
                    raise
                critiques = []
            if not critiques:
                return Chosen(answer, f"round {r}: no critique came; the answer of "
                              f"{_round_name(r - 1)}")
            ask = Ask(author.member, revise_messages(swarm.messages, answer.text, critiques),
                      f"revision {r}", author.index, no_tools(swarm))
            kept = Chosen(answer, f"revision {r} failed; the answer of {_round_name(r - 1)}")
            if r == swarm.rounds:
                return Generate(ask, f"revision {r} of {swarm.rounds}, after "
                                f"{len(critiques)} critique(s)", kept if skip else None)
            revised = await swarm.ask(ask)
            if not revised.ok or not revised.text.strip():
                if not skip:
                    raise swarm.failed(f"revision {r} failed")
                return kept
            answer = revised
        raise AssertionError("rounds >= 1")  # the loop returns


def _round_name(r: int) -> str:
    return "the first answer" if r == 0 else f"revision {r}"


async def _author(swarm: Swarm, skip: bool) -> tuple[Ask, Result]:
    """The first member that answers is the author (A, unless A failed)."""
    for i, m in enumerate(swarm.members):
        answer = await swarm.ask(Ask(m, swarm.messages, "answer", i))
        if answer.ok:
            return answer.ask, answer
        if not skip:
            break
    raise swarm.failed("no member gave a first answer to critique")
