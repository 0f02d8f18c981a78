"""What routing may know of one request beyond its model and path.

A RouteContext is made for every routed request, but reads nothing until a scorer asks:
with round_robin and every scorer off, no body is decoded (the hot path forwards bytes).
Whatever is worked out (the decoded body, the prompt's text) is kept for the next asker,
and a scorer's verdict (a theme, a preferred worker and why) is written here for the
attempts and the reply's headers.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from eldric.exchange import LaneRequest

_decode = msgspec.json.Decoder()


class RouteContext:
    __slots__ = ("request", "body", "model", "path", "theme", "prefer", "prefer_reason",
                 "decided_by", "reply_headers", "note", "advice", "learned", "_doc",
                 "_prompt")

    def __init__(self, request: LaneRequest, body: bytes, model: str | None) -> None:
        self.request = request
        self.body = body
        self.model = model
        self.path = request.path
        self.theme: str | None = None  # knowledge routing's verdict (X-Eldric-Theme)
        # A worker id to try first (a session's worker, the AI's choice), if it is live
        # and has room; prefer_reason is the reply's X-Eldric-Route-Reason then, and
        # decided_by its X-Eldric-Strategy (e.g. "ai_routing").
        self.prefer: str | None = None
        self.prefer_reason = ""
        self.decided_by: str | None = None
        self.reply_headers: dict[str, str] | None = None  # more X-Eldric-* for the reply
        # What a scorer that did not decide wants said after the strategy's reason (the
        # AI's fall-back: "ai_routing fell back (timeout: …)"), one header line.
        self.note = ""
        # A pick that only advises (AI advisory mode), told where the request went.
        self.advice: str | None = None
        # What the strategy's chosen() taught (cache_aware: its tree, the worker, where
        # the new part of the prompt begins), for failed() to undo.
        self.learned: Any = None
        self._doc: Any = msgspec.UNSET
        self._prompt: tuple[int, str] | None = None  # (the limit, the text)

    def document(self) -> dict[str, Any] | None:
        """The JSON body, decoded once; None when it is not a JSON object."""
        if self._doc is msgspec.UNSET:
            try:
                doc = _decode.decode(self.body) if self.body else None
            except (msgspec.DecodeError, RecursionError):  # nested past msgspec's bound
                doc = None
            self._doc = doc if isinstance(doc, dict) else None
        return self._doc  # type: ignore[no-any-return]

    def prompt(self, limit: int = 1 << 20) -> str:
        """The prompt as text in the order a backend reads it, system prompt first, cut to
        `limit` characters: what a prefix cache would hold. Chat messages are rendered
        `role: text` per message; /v1/completions' prompt, Anthropic's `system` and
        Responses' `instructions`/`input` likewise. "" when there is none."""
        got = self._prompt
        # rendered up to the largest limit asked so far (a huge body costs its limit's
        # work, not its size); cut short there, a larger limit renders again
        if got is None or (len(got[1]) >= got[0] and limit > got[0]):
            got = self._prompt = (limit, render(self.document(), limit))
        return got[1][:limit]

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def add_header(self, name: str, value: str) -> None:
        if self.reply_headers is None:
            self.reply_headers = {}
        self.reply_headers[name] = value


def text_of(content: Any) -> str:
    """A message's content as text: a string, or the text of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    out.append(text)
                elif isinstance(part.get("content"), (str, list)):  # tool results
                    out.append(text_of(part["content"]))
        return "\n".join(out)
    return ""


def render(doc: dict[str, Any] | None, limit: int = 1 << 20) -> str:
    """The prompt's text (see RouteContext.prompt), `limit` characters at most: parts
    past it are not rendered at all."""
    if not doc:
        return ""
    parts: list[str] = []
    left = limit

    def add(text: str) -> bool:  # False once the limit is reached
        nonlocal left
        parts.append(text[:left])
        left -= len(text) + 1  # the newline joining the parts (within the limit at 0)
        return left >= 0

    for key in ("system", "instructions"):  # Anthropic's and Responses' system prompt
        if doc.get(key) and not add(f"system: {text_of(doc[key])}"):
            return "\n".join(parts)[:limit]
    messages = doc.get("messages")
    if not isinstance(messages, list):
        messages = doc.get("input") if isinstance(doc.get("input"), list) else None
    if isinstance(messages, list):
        system = [m for m in messages if isinstance(m, dict) and m.get("role") == "system"]
        rest = [m for m in messages if isinstance(m, dict) and m.get("role") != "system"]
        for m in itertools.chain(system, rest):
            if not add(f"{m.get('role', '')}: {text_of(m.get('content'))[:left]}"):
                break
    else:
        for key in ("prompt", "input"):
            value = doc.get(key)
            if isinstance(value, str):
                if not add(value):
                    break
            elif isinstance(value, list) and value and isinstance(value[0], str):
                if not add("\n".join(v for v in value if isinstance(v, str))):
                    break
    return "\n".join(parts)[:limit]


def last_user(doc: dict[str, Any] | None, limit: int) -> str:
    """The last user turn's text, cut to `limit` characters (the classifier's input)."""
    return _user_turn(doc, limit, last=True)


def first_user(doc: dict[str, Any] | None, limit: int) -> str:
    """The first user turn's text, cut to `limit` (what a conversation is about: the AI
    decider's digest)."""
    return _user_turn(doc, limit, last=False)


def _user_turn(doc: dict[str, Any] | None, limit: int, last: bool) -> str:
    if not doc:
        return ""
    messages = doc.get("messages")
    if not isinstance(messages, list):
        messages = doc.get("input")
    if isinstance(messages, str):
        return messages[:limit]
    if isinstance(messages, list):
        for m in reversed(messages) if last else messages:
            if isinstance(m, dict) and m.get("role") == "user":
                return text_of(m.get("content"))[:limit]
    prompt = doc.get("prompt")
    return prompt[:limit] if isinstance(prompt, str) else ""
