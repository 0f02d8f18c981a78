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

import msgspec

from eldric.wire.anthropic_request import MessagesRequest, chat_body, decode
from eldric.wire.anthropic_shared import anthropic_usage, stop_reason
from eldric.wire.anthropic_stream import MessageEvents, message_id, tool_use_id
from eldric.wire.openai_reply import Call, Reply, Unreadable, json_object, reply, text

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
        return _encode(message(reply(body), self.model))

    def feed(self, event: bytes) -> bytes:
        return self._events.feed(event)

    def close(self) -> bytes:
        return self._events.close()

    def cut(self, status: int, message: str, code: str) -> bytes:
        return self._events.cut(status, message, code)


def messages(body: bytes) -> Messages:
    """The Factory of POST /v1/messages."""
    return Messages(decode(body, MessagesRequest))


def message(completion: Reply, model: str) -> dict:
    """A chat.completion -> an Anthropic Message. Unreadable (a ValueError) when it is
    not one."""
    choice = completion.choices[0] if completion.choices else None
    msg = choice.message if choice is not None else None
    if choice is None or msg is None:
        raise Unreadable("the backend's reply is not a chat completion: no choices[0].message")
    content: list[dict] = []
    said = text(msg)
    if said:
        content.append({"type": "text", "text": said})
    calls = msg.tool_calls or []
    content += [_tool_use(call) for call in calls]
    reason, sequence = stop_reason(choice.finish_reason, choice.stop_reason, bool(calls))
    return {"id": message_id(completion.id), "type": "message", "role": "assistant",
            "model": model, "content": content, "stop_reason": reason,
            "stop_sequence": sequence, "usage": anthropic_usage(completion.usage)}


def _tool_use(call: Call) -> dict:
    fn = call.function
    if fn is None:
        raise Unreadable("the backend sent a tool call without its function")
    try:
        tool_input = json_object(fn.arguments)
    except Unreadable as exc:
        raise Unreadable(f"the backend's {exc}") from None
    return {"type": "tool_use", "id": tool_use_id(call.id), "name": fn.name or "",
            "input": tool_input}
