"""Anthropic's Messages API served from any Chat Completions backend (the ingress).

``messages(body)`` is the Factory for POST /v1/messages (eldric.wire.translate): it
decodes and checks the client's request (a 400 naming the field otherwise), and the
Translator it returns sends the Chat Completions twin of the request
(wire/anthropic_request.py) and turns the reply back: a whole chat.completion into a
Message (``whole``), a chunk stream into Anthropic's event stream (``feed``/``close``,
wire/anthropic_stream.py). Pure, no I/O. Shapes: the anthropic SDK's types (Message,
RawMessageStreamEvent) and https://docs.anthropic.com/en/api/messages.

Not translated: thinking (a backend's reasoning_content is left out: a thinking block
needs a signature only Anthropic can make, and the client would send it back), server
tools, Files API sources and PDF documents (a 400 naming the block).
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.wire.anthropic_request import MessagesRequest, chat_body, decode
from eldric.wire.anthropic_shared import anthropic_usage, stop_reason
from eldric.wire.anthropic_stream import MessageEvents, message_id, tool_use_id

_encode = msgspec.json.encode


class Messages:
    """One /v1/messages request's translation (a Translator)."""

    upstream_path = "/v1/chat/completions"
    media_type = "text/event-stream"

    def __init__(self, req: MessagesRequest):
        self.model = req.model
        self.stream = req.stream
        self._body = chat_body(req)
        self._events = MessageEvents(req.model)

    def request(self) -> bytes:
        return _encode(self._body)

    def whole(self, body: bytes) -> bytes:
        return _encode(message(msgspec.json.decode(body), self.model))

    def feed(self, event: bytes) -> bytes:
        return self._events.feed(event)

    def close(self) -> bytes:
        return self._events.close()

    def cut(self, status: int, message: str, code: str) -> bytes:
        return self._events.cut(status, message, code)


def messages(body: bytes) -> Messages:
    """The Factory of POST /v1/messages."""
    return Messages(decode(body, MessagesRequest))


def message(completion: Any, model: str) -> dict:
    """A chat.completion -> an Anthropic Message. A ValueError when it is not one."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    msg = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(msg, dict):
        raise ValueError("not a chat.completion: no choices[0].message")
    content: list[dict] = []
    text = _text(msg.get("content")) or _text(msg.get("refusal"))
    if text:
        content.append({"type": "text", "text": text})
    calls = msg.get("tool_calls") or []
    content += [_tool_use(call) for call in calls]
    reason, sequence = stop_reason(choice.get("finish_reason"), choice.get("stop_reason"),
                                   bool(calls))
    return {"id": message_id(completion.get("id")), "type": "message", "role": "assistant",
            "model": model, "content": content, "stop_reason": reason,
            "stop_sequence": sequence, "usage": anthropic_usage(completion.get("usage"))}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, from a backend that answers in them
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def _tool_use(call: Any) -> dict:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        raise ValueError("a tool call without its function")
    args = fn.get("arguments")
    try:
        tool_input = msgspec.json.decode(args) if isinstance(args, str) and args.strip() \
            else (args or {})
    except msgspec.DecodeError:
        raise ValueError("a tool call's arguments are not JSON") from None
    if not isinstance(tool_input, dict):
        raise ValueError("a tool call's arguments are not a JSON object")
    return {"type": "tool_use", "id": tool_use_id(call.get("id")),
            "name": fn.get("name") or "", "input": tool_input}
