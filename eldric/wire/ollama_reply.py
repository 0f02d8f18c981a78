"""A Chat Completions reply (whole, or its SSE stream) as Ollama's /api/chat or
/api/generate reply: pure, no I/O.

Ollama's shape (docs/api.md, api/types.go ChatResponse/GenerateResponse, server/routes.go
streamResponse): one JSON object per line, `application/x-ndjson`, no blank lines (the
`ollama` client json-decodes every line). Each line has `model`, `created_at` (RFC 3339),
the text (`message` on /api/chat, on every line, the last included: the client's
ChatResponse requires it; `response` on /api/generate) and `done`. The last line says
`done: true`, `done_reason` (stop, length) and the metrics (counts; durations in ns). Tool
calls come whole, arguments as JSON objects, on a line of their own before the last one:
the upstream streams them as JSON fragments, so they are gathered until the choice ends.
A stream that fails or ends early ends with an `{"error": "…"}` line (status stays 200).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from eldric.wire.dialect import OLLAMA
from eldric.wire.openai_reply import (Call, Choice, Message, Unreadable, Usage, json_object, reply,
                                      sse_data, text)

_encode = msgspec.json.encode

# Chat Completions finish_reason -> Ollama's done_reason (stop or length; a tool call is
# "stop", as Ollama itself reports it; a filtered reply ended too).
_DONE = {"length": "length"}


class _Clock:
    """RFC 3339 UTC with nanoseconds, as Ollama stamps each line; the date and time of
    day formatted once a second (every line of a stream asks)."""

    __slots__ = ("secs", "head")

    def __init__(self) -> None:
        self.secs, self.head = -1, ""

    def __call__(self) -> str:
        secs, ns = divmod(time.time_ns(), 1_000_000_000)
        if secs != self.secs:
            self.secs, self.head = secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        return f"{self.head}.{ns:09d}Z"


created_at = _Clock()


def _text(m: Message | None, choice: Choice) -> str:
    return choice.text or "" if m is None else text(m)


def _arguments(args: str | dict | None) -> dict:
    try:
        return json_object(args)
    except Unreadable as exc:
        raise Unreadable(f"the backend's {exc}") from None


class OllamaReply:
    """One /api/chat or /api/generate request's translation (eldric.wire.translate's
    Translator): built by eldric.wire.ollama_chat from the client's body."""

    media_type = "application/x-ndjson"

    def __init__(self, *, model: str, stream: bool, upstream_path: str, body: dict,
                 chat: bool, thinking: bool = True, load: str | None = None):
        self.model = model
        self.stream = stream
        self.upstream_path = upstream_path
        self._body = body
        self._chat = chat  # /api/chat (message) or /api/generate (response)
        self._thinking = thinking  # the client did not say think: false
        self._load = load  # "load"/"unload": an empty request, answered as Ollama does
        self._start = time.monotonic_ns()
        self._first = 0  # when the first token came, for the eval durations
        self._reason: str | None = None  # the upstream's finish_reason, once given
        self._usage: Usage | None = None
        self._calls: dict[int, list] = {}  # index -> [id, name, argument fragments]
        self._over = False  # the last line (done or error) was sent

    def request(self) -> bytes:
        return _encode(self._body)

    # ------------------------------------------------------------ lines

    def _piece(self, content: str, thinking: str | None = None,
               calls: list[dict] | None = None) -> dict:
        thinking = thinking if self._thinking else None
        if self._chat:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = calls
            return {"model": self.model, "created_at": created_at(), "message": message}
        out: dict[str, Any] = {"model": self.model, "created_at": created_at(),
                               "response": content}
        if thinking:
            out["thinking"] = thinking
        if calls:
            out["tool_calls"] = calls
        return out

    def _done(self, obj: dict) -> dict:
        """The last object: done, done_reason and the metrics. The backend's load time is
        not seen from here (0); the prompt took until the first token came."""
        now = time.monotonic_ns()
        first = self._first or now
        obj["done"] = True
        obj["done_reason"] = _DONE.get(self._reason or "", "stop")
        obj["total_duration"] = now - self._start
        obj["load_duration"] = 0
        usage = self._usage
        if usage is not None and usage.prompt_tokens is not None:
            obj["prompt_eval_count"] = usage.prompt_tokens
        obj["prompt_eval_duration"] = first - self._start if self._first else 0
        if usage is not None and usage.completion_tokens is not None:
            obj["eval_count"] = usage.completion_tokens
        obj["eval_duration"] = now - first if self._first else now - self._start
        return obj

    def _loaded(self) -> bytes:
        obj = self._piece("")
        obj["done"] = True
        obj["done_reason"] = self._load
        return _encode(obj)

    def _tool_calls(self) -> list[dict]:
        calls = [{"id": cid or f"call_{index}",
                  "function": {"index": index, "name": name,
                               "arguments": _arguments("".join(parts))}}
                 for index, (cid, name, parts) in sorted(self._calls.items())]
        self._calls.clear()
        return calls

    # ------------------------------------------------------------ whole

    def whole(self, body: bytes) -> bytes:
        got = reply(body)
        if self._load:
            return self._loaded()
        if not got.choices:
            raise Unreadable("the backend's reply has no choices")
        choice = got.choices[0]
        m = choice.message
        calls = [{"id": c.id or f"call_{i}",
                  "function": {"index": i, "name": c.function.name if c.function else "",
                               "arguments": _arguments(c.function.arguments)
                               if c.function else {}}}
                 for i, c in enumerate((m.tool_calls if m else None) or [])]
        self._reason = choice.finish_reason
        self._usage = got.usage
        thinking = (m.reasoning_content or m.reasoning) if m else None
        return _encode(self._done(self._piece(_text(m, choice), thinking, calls)))

    # ------------------------------------------------------------ stream

    def feed(self, event: bytes) -> bytes:
        if self._over:
            return b""
        data = sse_data(event)
        if data is None:
            return b""  # a comment or keep-alive
        if data == b"[DONE]":
            return self._finish()
        try:
            chunk = reply(data)
        except Unreadable:
            return self._fail("the backend sent a stream event that is not a chat "
                              "completion chunk")
        if chunk.error is not None:
            err = chunk.error
            message = err.get("message") if isinstance(err, dict) else err
            return self._fail(str(message or "the backend failed mid-reply"))
        if chunk.usage is not None:
            self._usage = chunk.usage
        try:
            return self._choices(chunk.choices)
        except Unreadable as exc:
            return self._fail(str(exc))

    def _choices(self, choices: list[Choice]) -> bytes:
        out = b""
        for choice in choices:
            if choice.index != 0:
                continue  # Ollama has one answer per request
            d = choice.delta
            said = _text(d, choice)
            thinking = (d.reasoning_content or d.reasoning) if d else None
            if d is not None and d.tool_calls:
                self._gather(d.tool_calls)
            if said or (thinking and self._thinking):
                if not self._first:
                    self._first = time.monotonic_ns()
                out += _encode(self._piece(said, thinking) | {"done": False}) + b"\n"
            if choice.finish_reason:
                self._reason = choice.finish_reason
                if self._calls:
                    calls = self._tool_calls()
                    out += _encode(self._piece("", None, calls) | {"done": False}) + b"\n"
        return out

    def _gather(self, deltas: list[Call]) -> None:
        if not self._first:
            self._first = time.monotonic_ns()
        for d in deltas:
            slot = self._calls.setdefault(d.index, ["", "", []])
            if d.id:
                slot[0] = d.id
            if d.function is not None:
                slot[1] += d.function.name or ""
                args = d.function.arguments
                if args:
                    slot[2].append(args if isinstance(args, str) else _encode(args).decode())

    def _finish(self) -> bytes:
        self._over = True
        try:
            calls = self._tool_calls() if self._calls else None  # no finish_reason came
        except Unreadable as exc:
            return OLLAMA.stream_error(502, str(exc), "upstream_error")
        head = _encode(self._piece("", None, calls) | {"done": False}) + b"\n" if calls else b""
        return head + _encode(self._done(self._piece(""))) + b"\n"

    def _fail(self, message: str) -> bytes:
        self._over = True
        return OLLAMA.stream_error(502, message, "upstream_error")

    def close(self) -> bytes:
        if self._over:
            return b""
        if self._reason is not None:
            return self._finish()  # finished, but no [DONE] after it
        return self._fail("the backend's stream ended before the reply was complete")

    def cut(self, status: int, message: str, code: str) -> bytes:
        if self._over:
            return b""
        self._over = True
        return OLLAMA.stream_error(status, message, code)
