"""What the deciding model is asked and what it must answer.

The question is small on purpose (a 1-3B model answers it within the deadline): a
compact summary of the candidate workers (in flight, load, latency, tags, models) and a
digest of the request (model, path, length, tools, the first user turn cut to a bound).
The answer is asked for as a JSON schema (OpenAI's response_format; Ollama and
llama.cpp's server enforce it with a grammar), and checked here whatever the endpoint
did with the schema: an object naming one of the candidates, and a reason.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.roles.router.context import RouteContext, first_user
from eldric.roles.router.pool import Worker
from eldric.roles.router.strategies import reported_load
from eldric.stream.headers import header_text

# Most workers described to the model (the least busy first); more would cost it time.
MAX_LISTED = 16
_MAX_TAGS = 8
_MAX_MODELS = 8
REASON_CHARS = 100  # the reason goes into a header line
# The id (a URL costs ~30 tokens: digits one by one), the reason and the JSON around
# them, with room: an answer cut by the limit is invalid JSON.
MAX_TOKENS = 192

SYSTEM = ("You choose the worker for one request in an LLM inference cluster. Prefer a "
          "worker with few requests in flight, low load and low latency, whose tags and "
          "models fit the request. Answer only with JSON: {\"worker\": \"<the id of one "
          "listed worker>\", \"reason\": \"<one short sentence>\"}.")


class Invalid(Exception):
    """The model's answer is not a choice among the candidates (its text says why)."""


class _Answer(msgspec.Struct):
    worker: str
    reason: str


_decode_answer = msgspec.json.Decoder(_Answer)
_encode = msgspec.json.Encoder()


def listed(candidates: list[Worker]) -> list[Worker]:
    return sorted(candidates, key=lambda w: (w.state.active, w.id))[:MAX_LISTED]


def summary(workers: list[Worker]) -> list[dict[str, Any]]:
    out = []
    for w in workers:
        load = reported_load(w)
        s = w.state
        out.append({"id": w.id, "in_flight": s.active,
                    "load": None if load is None else round(load, 2),
                    "ttfb_ms": None if s.ttfb_ms is None else round(s.ttfb_ms),
                    "tags": w.tags[:_MAX_TAGS], "models": s.models[:_MAX_MODELS]})
    return out


def digest(ctx: RouteContext, limit: int) -> dict[str, Any]:
    doc = ctx.document()
    return {"model": ctx.model, "path": ctx.path, "chars": len(ctx.prompt()),
            "tools": bool(doc and doc.get("tools")), "theme": ctx.theme,
            "first_user_turn": first_user(doc, limit)}


def question(model: str, workers: list[Worker], ctx: RouteContext, limit: int) -> bytes:
    """The chat completion request the deciding model gets (non-streamed, temperature 0)."""
    schema = {"type": "object",
              "properties": {"worker": {"type": "string", "enum": [w.id for w in workers]},
                             "reason": {"type": "string", "maxLength": REASON_CHARS}},
              "required": ["worker", "reason"], "additionalProperties": False}
    user = _encode.encode({"request": digest(ctx, limit), "workers": summary(workers)})
    return _encode.encode({
        "model": model, "stream": False, "temperature": 0, "max_tokens": MAX_TOKENS,
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": user.decode()}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "worker_choice", "strict": True,
                                            "schema": schema}}})


def answer(body: bytes, candidates: set[str]) -> tuple[str, str]:
    """(worker id, reason as one header line) from the endpoint's chat completion reply.
    Raises Invalid when the reply holds no such choice."""
    try:
        reply = msgspec.json.decode(body)
        content = reply["choices"][0]["message"]["content"]
    except (msgspec.DecodeError, KeyError, IndexError, TypeError):
        raise Invalid("the reply is not a chat completion") from None
    if not isinstance(content, str):
        raise Invalid("the reply has no text")
    # a model that ignored the schema may wrap the object in prose or a code fence
    start, end = content.find("{"), content.rfind("}")
    if start < 0 or end < start:
        raise Invalid("the answer holds no JSON object")
    try:
        choice = _decode_answer.decode(content[start:end + 1])
    except msgspec.DecodeError:
        raise Invalid("the answer is not {\"worker\", \"reason\"} JSON") from None
    if choice.worker not in candidates:
        raise Invalid(f"the answer names {header_text(choice.worker, 80)!r}, not a candidate")
    reason = header_text(choice.reason, REASON_CHARS)
    if not reason:
        raise Invalid("the answer gives no reason")
    return choice.worker, reason
