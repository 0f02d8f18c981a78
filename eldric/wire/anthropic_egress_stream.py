"""Anthropic Messages SSE stream -> OpenAI chat.completion.chunk SSE stream.

Event flow (https://docs.anthropic.com/en/docs/build-with-claude/streaming): message_start,
then per content block content_block_start / content_block_delta* / content_block_stop,
then message_delta (stop_reason, cumulative usage) and message_stop; ping events anywhere;
an ``error`` event may end the stream after a 200. Unknown event types are ignored.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from eldric.errors import error_json
from eldric.wire.anthropic_shared import ERRORS, FINISH, openai_usage, prompt_tokens, sse_fields

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _sse(obj: dict) -> bytes:
    return b"data: " + _encode(obj) + b"\n\n"


def _parse_event(event: bytes) -> dict | None:
    """The JSON data of one SSE event, its type from the event name if it has none."""
    name, data = sse_fields(event)
    if data is None:
        return None
    try:
        obj = _decode(data)
    except msgspec.DecodeError:
        return None
    if isinstance(obj, dict):
        obj.setdefault("type", name)
        return obj
    return None


def _stream_error(err: Any) -> bytes:
    err = err if isinstance(err, dict) else {}
    otype, code, status = ERRORS.get(err.get("type"), ("api_error", "upstream_error", 502))
    return b"data: " + error_json(status, str(err.get("message") or "upstream error"),
                                  type=otype, code=code) + b"\n\n"


class StreamTranslator:
    """Anthropic SSE events in, OpenAI ``chat.completion.chunk`` SSE events out.

    Feed each complete upstream event (the bytes between blank lines) to ``feed``; call
    ``finish`` at the end of the upstream reply. After an ``error`` event the stream is
    over: ``finish`` then returns nothing (as a relayed stream ends on its error event).
    ``usage`` is (prompt_tokens, completion_tokens), the latest cumulative counts;
    ``complete`` turns true at ``message_stop``.
    """

    def __init__(self, *, model: str, include_usage: bool):
        self.model = model
        self.include_usage = include_usage
        self.id = f"chatcmpl-{time.time_ns():x}"
        self.created = int(time.time())
        self.usage: tuple[int, int] | None = None
        self.complete = False
        self.errored = False
        self._usage: dict[str, int] = {}  # Anthropic's usage counts, as last reported
        self._role_sent = False
        self._finished = False
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        obj: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk",
                               "created": self.created, "model": self.model,
                               "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                            "finish_reason": finish_reason}]}
        if self.include_usage:
            obj["usage"] = None
        return _sse(obj)

    def _count(self, usage: Any) -> None:
        """message_start's usage, then message_delta's: cumulative counts, any field of
        which may be left out (message_delta always has output_tokens)."""
        if isinstance(usage, dict):
            self._usage.update((k, v) for k, v in usage.items() if isinstance(v, int))
            self.usage = (prompt_tokens(self._usage), self._usage.get("output_tokens", 0))

    def _finish_chunk(self, reason: str | None) -> list[bytes]:
        if self._finished:
            return []
        self._finished = True
        return [self._chunk({}, FINISH.get(reason, "stop"))]

    def feed(self, event: bytes) -> list[bytes]:
        if self.errored:
            return []
        ev = _parse_event(event)
        kind = ev.get("type") if ev else None
        if kind == "message_start":
            msg = ev.get("message") or {}
            if msg.get("id"):
                self.id = msg["id"]
            self._count(msg.get("usage"))
            return [self._chunk({"content": ""})]
        if kind == "content_block_start":
            block = ev.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tool_index[ev.get("index")] = len(self._tool_index)
                return [self._chunk({"tool_calls": [{
                    "index": index, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = ev.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json") \
                    and ev.get("index") in self._tool_index:
                return [self._chunk({"tool_calls": [{
                    "index": self._tool_index[ev["index"]],
                    "function": {"arguments": delta["partial_json"]}}]})]
            return []  # thinking_delta, signature_delta, citations_delta: no counterpart
        if kind == "message_delta":
            self._count(ev.get("usage"))
            reason = (ev.get("delta") or {}).get("stop_reason")
            return self._finish_chunk(reason) if reason else []
        if kind == "message_stop":
            self.complete = True
            return self._finish_chunk(None)
        if kind == "error":
            self.errored = True
            return [_stream_error(ev.get("error"))]
        return []  # ping, and event types added later

    def finish(self) -> list[bytes]:
        if self.errored:
            return []
        out = []
        if self.include_usage:
            prompt, completion = self.usage or (0, 0)
            cached = self._usage.get("cache_read_input_tokens")
            out.append(_sse({"id": self.id, "object": "chat.completion.chunk",
                             "created": self.created, "model": self.model, "choices": [],
                             "usage": openai_usage(prompt, completion, cached)}))
        out.append(b"data: [DONE]\n\n")
        return out
