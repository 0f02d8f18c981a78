"""OpenAI's chat replies written for native translators: the whole chat.completion and
the chat.completion.chunk events of a stream, as every native API maps to them.

Shapes: https://platform.openai.com/docs/api-reference/chat/object and
/chat-streaming. The first chunk carries ``role: assistant``; a tool call's first chunk
carries its index, id, type and name with empty arguments, later chunks more argument
text under the same index; the finish chunk has an empty delta and the finish_reason;
with ``stream_options.include_usage`` every chunk has ``"usage": null`` and a last chunk
with no choices carries the usage; ``data: [DONE]`` ends the stream.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from eldric.errors import error_json

_encode = msgspec.json.encode

DONE = b"data: [DONE]\n\n"


def sse(obj: Any) -> bytes:
    return b"data: " + _encode(obj) + b"\n\n"


def error_event(status: int, message: str, code: str = "upstream_error") -> bytes:
    """OpenAI's in-stream error event, as eldric sends one (DESIGN: errors)."""
    return b"data: " + error_json(status, message, code=code) + b"\n\n"


def api_error(status: int, raw: bytes, *fields: str, code: str | None = None) -> bytes:
    """A native API's error body as OpenAI's error JSON: the message from the first of
    `fields` the JSON object has (Cohere's "message", a problem's "detail"), else the
    body's text. (eldric.stream.upstream_errors.normalise knows the OpenAI-compatible
    servers' shapes; wire cannot import the core.)"""
    try:
        data = msgspec.json.decode(raw) if raw else None
    except (msgspec.DecodeError, UnicodeDecodeError):
        data = None
    message = next((str(data[f]) for f in fields if isinstance(data, dict) and data.get(f)),
                   None) or raw[:500].decode("utf-8", "replace").strip() \
        or f"the backend answered HTTP {status}"
    if code is None:
        code = {429: "rate_limit_exceeded"}.get(status, "upstream_error" if status >= 500
                                                 else None)
    return error_json(status, message, code=code)


def new_id(prefix: str = "chatcmpl") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def call_id() -> str:
    """An id for a tool call whose API gives none (OpenAI's shape: call_…)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def usage(prompt: int, completion: int, cached: int | None = None) -> dict:
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def completion(model: str, *, text: str | None, tool_calls: list[dict] | None = None,
               finish_reason: str = "stop", prompt_tokens: int | None = None,
               completion_tokens: int | None = None, id: str | None = None,
               created: int | None = None, reasoning: str | None = None) -> dict:
    """A whole chat.completion. `tool_calls` in OpenAI's shape ({id, type, function:
    {name, arguments (a JSON string)}}); see tool_call()."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    out: dict[str, Any] = {
        "id": id or new_id(), "object": "chat.completion",
        "created": created or int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason}]}
    if prompt_tokens is not None or completion_tokens is not None:
        out["usage"] = usage(prompt_tokens or 0, completion_tokens or 0)
    return out


def tool_call(name: str, arguments: Any, id: str | None = None) -> dict:
    """One tool call of a whole reply; `arguments` an object (encoded) or a JSON string."""
    args = arguments if isinstance(arguments, str) else _encode(arguments or {}).decode()
    return {"id": id or call_id(), "type": "function",
            "function": {"name": name, "arguments": args}}


class ChunkWriter:
    """The chunk events of one streamed chat reply, in OpenAI's order (see above).

    ``text()``, ``tool()``/``tool_args()`` and ``finish()`` return the events to send
    (empty text sends nothing); ``end()`` the usage chunk (when asked for) and
    ``[DONE]``. ``finished`` tells whether the finish chunk went out."""

    __slots__ = ("model", "include_usage", "id", "created", "_role_sent", "finished",
                 "_tools")

    def __init__(self, model: str, *, include_usage: bool = False, id: str | None = None):
        self.model = model
        self.include_usage = include_usage
        self.id = id or new_id()
        self.created = int(time.time())
        self._role_sent = False
        self.finished = False
        self._tools = 0  # tool calls started so far (the next one's index)

    def chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        obj: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk",
                               "created": self.created, "model": self.model,
                               "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                            "finish_reason": finish_reason}]}
        if self.include_usage:
            obj["usage"] = None
        return sse(obj)

    @property
    def started(self) -> bool:
        """Whether a chunk went out: before, a failure is still the reply it stands for
        (wire/native/refused.py: the call fails over)."""
        return self._role_sent

    def start(self) -> list[bytes]:
        """The role chunk on its own (an API that says a message began)."""
        return [] if self._role_sent else [self.chunk({"content": ""})]

    def text(self, text: str | None) -> list[bytes]:
        return [self.chunk({"content": text})] if text else []

    def reasoning(self, text: str | None) -> list[bytes]:
        return [self.chunk({"reasoning_content": text})] if text else []

    def tool(self, name: str, id: str | None = None, arguments: str = "") -> tuple[int, list[bytes]]:
        """A tool call begins: (its index, its first chunk). Arguments may come whole
        here (an API that sends a call at once) or later through tool_args()."""
        index = self._tools
        self._tools += 1
        return index, [self.chunk({"tool_calls": [{
            "index": index, "id": id or call_id(), "type": "function",
            "function": {"name": name, "arguments": arguments}}]})]

    def tool_args(self, index: int, text: str) -> list[bytes]:
        return [self.chunk({"tool_calls": [{"index": index, "function": {"arguments": text}}]})] \
            if text else []

    @property
    def tools_called(self) -> int:
        return self._tools

    def finish(self, reason: str) -> list[bytes]:
        """The finish chunk, once (a second call sends nothing)."""
        if self.finished:
            return []
        self.finished = True
        return [self.chunk({}, reason)]

    def end(self, usage_counts: tuple[int, int] | None, cached: int | None = None) -> list[bytes]:
        """What ends the stream: the usage chunk when asked for, then [DONE]."""
        out = []
        if self.include_usage:
            prompt, completion_ = usage_counts or (0, 0)
            out.append(sse({"id": self.id, "object": "chat.completion.chunk",
                            "created": self.created, "model": self.model, "choices": [],
                            "usage": usage(prompt, completion_, cached)}))
        out.append(DONE)
        return out
