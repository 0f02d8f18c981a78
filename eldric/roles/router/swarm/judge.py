"""The judge's and the synthesis model's prompts, and reading the judge's structured
answer. Only answers that are `ok` reach a prompt: failure text never does."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from eldric.roles.router.swarm.strategy import Messages, Result

# The question the client asked, as the judge is told it: its last user message.
def question(messages: Messages) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return "".join(p.get("text", "") for p in c if isinstance(p, dict))
            return str(c or "")
    return ""


def shown(r: Result) -> str:
    """One answer as a prompt shows it: its text, or the tool calls it makes."""
    calls = r.tool_calls
    if not calls:
        return r.text.strip()
    made = ", ".join(f"{(c.get('function') or {}).get('name')}"
                     f"({(c.get('function') or {}).get('arguments')})" for c in calls)
    return f"{r.text.strip()}\n(tool calls) {made}".strip()


def numbered(results: list[Result]) -> str:
    """The candidates, numbered from 0, as a prompt shows them."""
    return "\n\n".join(f"[{i}]\n{shown(r)}" for i, r in enumerate(results))


SYNTHESIZE_SYSTEM = (
    "You merge several candidate answers to the user's request into one answer. Keep "
    "what is correct and well supported, drop what is wrong, resolve disagreements, and "
    "answer the user directly. Do not mention the candidates or that there were several.")


def synthesis_messages(client: Messages, ok: list[Result]) -> Messages:
    """The synthesis call: the client's conversation, then the candidates to merge."""
    convo = [m for m in client if m.get("role") != "system"]
    system = [m for m in client if m.get("role") == "system"]
    note = (f"Candidate answers to the last message, from {len(ok)} models:\n\n"
            f"{numbered(ok)}\n\nWrite the single best answer to the last message.")
    return [{"role": "system", "content": SYNTHESIZE_SYSTEM}, *system, *convo,
            {"role": "user", "content": note}]


PICK_SYSTEM = (
    "You are a judge. Pick the best of the numbered candidate answers to the question: "
    "the most correct, complete and helpful. Reply with JSON only: "
    '{"index": <number of the best candidate>, "reason": "<one short sentence>"}')

def json_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The response_format asking for JSON of this schema: structured output where the
    backend supports it (OpenAI, vLLM, llama.cpp); the prompt says the same, and the
    answer is validated either way (read_object)."""
    return {"type": "json_schema",
            "json_schema": {"name": name, "strict": True, "schema": schema}}


PICK_FORMAT = json_format("pick", {
    "type": "object", "additionalProperties": False, "required": ["index", "reason"],
    "properties": {"index": {"type": "integer", "minimum": 0},
                   "reason": {"type": "string"}}})


def pick_messages(client: Messages, ok: list[Result]) -> Messages:
    return [{"role": "system", "content": PICK_SYSTEM},
            {"role": "user", "content": f"Question:\n{question(client)}\n\n"
                                        f"Candidates:\n\n{numbered(ok)}"}]


class Pick(msgspec.Struct):
    index: int
    reason: str = ""


_OBJECT = re.compile(r"\{.*\}", re.S)
T = TypeVar("T")


def read_object(text: str, type_: type[T], what: str) -> T | str:
    """The JSON object in the judge's answer (prose around it allowed) as `type_`, or
    why there is none."""
    found = _OBJECT.search(text or "")
    if found is None:
        return "the judge's answer holds no JSON object"
    try:
        return msgspec.json.decode(found.group(0), type=type_)
    except msgspec.DecodeError as exc:
        return f"the judge's answer is not a valid {what} ({exc})"


def read_pick(text: str, n: int) -> Pick | str:
    """The judge's pick, or why it is not one (not JSON, no index, out of range)."""
    pick = read_object(text, Pick, "pick")
    if isinstance(pick, str):
        return pick
    if not 0 <= pick.index < n:
        return f"the judge picked index {pick.index}, not one of 0..{n - 1}"
    return pick
