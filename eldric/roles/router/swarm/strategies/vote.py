"""vote: members answer independently; equal answers are grouped and the largest group's
answer is returned as it is (the earliest member's), with its confidence (the group's
share of the answers) and the dissent (every other group: its members and answer).

How answers are grouped: tool calls by name and arguments (parsed, key order ignored),
short answers (a label, a number, a name: at most SHORT_WORDS words) by exact match after
normalising (case, accents' forms, punctuation, markup, whitespace), free text by the
judge (structured output, validated: every answer in exactly one group). A judge that
fails or answers no valid grouping falls back to the stated rule, normalised exact
match, and the record says so. A tie goes to the group of the earliest member."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import msgspec

from eldric.roles.router.swarm import judge
from eldric.roles.router.swarm.run import Swarm
from eldric.roles.router.swarm.strategies.critique import no_tools  # the judge answers JSON
from eldric.roles.router.swarm.strategy import Ask, Chosen, Final, Result, Strategy

SHORT_WORDS = 8
FALLBACK_RULE = "grouping by normalised exact match"

GROUP_SYSTEM = (
    "You compare answers. Group the numbered candidate answers to the question by what "
    "they answer: answers that mean the same thing, whatever the wording, go in one "
    "group. Every candidate goes in exactly one group. Reply with JSON only: "
    '{"groups": [[<numbers of the candidates in the first group>], [...], ...]}')

GROUP_FORMAT = judge.json_format("groups", {
    "type": "object", "additionalProperties": False, "required": ["groups"],
    "properties": {"groups": {"type": "array", "items": {
        "type": "array", "items": {"type": "integer", "minimum": 0}}}}})


class Vote(Strategy):
    name = "vote"
    description = ("members answer independently; the majority answer is returned with "
                   "its confidence and the dissent")

    async def run(self, swarm: Swarm) -> Final:
        ok = await swarm.fanout(swarm.asks())
        lone = swarm.lone(ok)
        if lone is not None:
            _decide(swarm, ok, [[0]], "only answer", lone.reason)
            return lone
        groups, how, note = await _groups(swarm, ok)
        best = max(groups, key=lambda g: (len(g), -g[0]))  # a tie: the earliest member
        reason = f"{len(best)} of {len(ok)} answers agree"
        if len([g for g in groups if len(g) == len(best)]) > 1:
            reason += " (a tie: the group of the earliest member)"
        _decide(swarm, ok, groups, how, f"{note}; {reason}" if note else reason)
        return Chosen(ok[best[0]], reason)


def _decide(swarm: Swarm, ok: list[Result], groups: list[list[int]], how: str,
            reason: str) -> None:
    """Record the vote: the winner, its confidence, and the dissent, group by group."""
    best = max(groups, key=lambda g: (len(g), -g[0]))
    swarm.choose(ok[best[0]].ask.index, reason, how)
    assert swarm.choice is not None
    swarm.choice["confidence"] = round(len(best) / len(ok), 3)
    swarm.choice["agree"] = [ok[i].ask.index for i in best]
    swarm.choice["dissent"] = [
        {"members": [ok[i].ask.index for i in g], "models": [ok[i].model for i in g],
         "answer": _shown(ok[g[0]])} for g in groups if g is not best]


async def _groups(swarm: Swarm, ok: list[Result]) -> tuple[list[list[int]], str, str]:
    """The groups (indexes into ok, each sorted, in the order of their first member),
    how they were made, and what the record notes about it."""
    free = [i for i, r in enumerate(ok) if not r.tool_calls and not short(r.text)]
    if len(free) < 2:  # nothing the judge must compare
        return by_key(ok), "exact", ""
    texts = [ok[i] for i in free]
    verdict = await swarm.ask(Ask(swarm.judge, group_messages(swarm.messages, texts),
                                  "judge", -1, {"response_format": GROUP_FORMAT,
                                                "temperature": 0, **no_tools(swarm)}))
    got = read_groups(verdict.text, len(texts)) if verdict.ok else \
        f"the judge failed: {verdict.error}"
    if isinstance(got, str):
        return by_key(ok), "fallback", f"{got}; fell back to {FALLBACK_RULE}"
    # the judge's groups of free text, the exact ones of the rest, merged in member order
    rest = [i for i in range(len(ok)) if i not in free]
    exact = [[rest[j] for j in g] for g in by_key([ok[i] for i in rest])] if rest else []
    groups = [[free[j] for j in g] for g in got] + exact
    return sorted((sorted(g) for g in groups), key=lambda g: g[0]), "judge", ""


def normalise(text: str) -> str:
    """What two short answers must share to be the same: "Paris." is "**paris**"."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", folded).split())


def short(text: str) -> bool:
    return len(normalise(text).split()) <= SHORT_WORDS


def key(r: Result) -> tuple[str, str]:
    """What equal answers share: their tool calls (name, arguments parsed) or their
    normalised text."""
    calls = r.tool_calls
    if calls:
        return ("tools", json.dumps([_call_key(c) for c in calls], sort_keys=True))
    return ("text", normalise(r.text))


def _call_key(call: dict[str, Any]) -> list[Any]:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    try:
        parsed = json.loads(args) if isinstance(args, str) else args
    except ValueError:
        parsed = args  # not JSON: compared as the text it is
    return [fn.get("name"), parsed]


def by_key(ok: list[Result]) -> list[list[int]]:
    """Groups of equal keys, in the order of their first member."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(ok):
        groups.setdefault(key(r), []).append(i)
    return list(groups.values())


def group_messages(client: judge.Messages, texts: list[Result]) -> judge.Messages:
    return [{"role": "system", "content": GROUP_SYSTEM},
            {"role": "user", "content": f"Question:\n{judge.question(client)}\n\n"
                                        f"Candidates:\n\n{judge.numbered(texts)}"}]


class Groups(msgspec.Struct):
    groups: list[list[int]]


def read_groups(text: str, n: int) -> list[list[int]] | str:
    """The judge's grouping of candidates 0..n-1, or why it is not one."""
    read = judge.read_object(text, Groups, "grouping")
    if isinstance(read, str):
        return read
    got = read.groups
    seen = sorted(i for g in got for i in g)
    if seen != list(range(n)) or any(not g for g in got):
        return f"the judge's groups do not hold each of the candidates 0..{n - 1} once"
    return got


def _shown(r: Result, most: int = 200) -> str:
    """A dissenting answer as the record shows it: its text, cut; or its tool calls."""
    if r.tool_calls:
        return "tool calls: " + ", ".join(str((c.get("function") or {}).get("name"))
                                          for c in r.tool_calls)
    text = r.text.strip()
    return text if len(text) <= most else text[:most] + "…"
