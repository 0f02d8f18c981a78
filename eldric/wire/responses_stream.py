"""A Chat Completions SSE stream -> the Responses API's event stream.

The documented order (O-SPEC "Streaming", research formats.md §2.4): response.created,
response.in_progress; per output item output_item.added, then for a message
content_part.added / output_text.delta* / output_text.done / content_part.done, for a
function call function_call_arguments.delta* / .done; output_item.done; and one terminal
event: response.completed (response.incomplete when the model hit its token limit,
response.failed when the upstream failed or its stream ended early). Every event carries
``sequence_number``, from 0 up by one. The SDK's ResponseStream helper also needs: the first
event is response.created; output_index contiguous from 0 in the order items are added;
each item added before its content; every item done before response.completed, whose
``output`` and ``usage`` are the whole reply.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.wire.openai_reply import sse_data
from eldric.wire.responses_reply import (
    INCOMPLETE, Reply, _dict, call_item, message_item, new_id, usage,
)

_encode = msgspec.json.encode


# A chunk, decoded only as far as the translation reads it (unknown fields skipped).
class _Fn(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _Call(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: _Fn | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_Call] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    usage: dict[str, Any] | None = None
    error: Any = None


_chunk = msgspec.json.Decoder(_Chunk)

# The head of every delta event of an item, made once: its event name, type, item_id,
# output_index (content_index), up to the delta itself.
_TEXT_HEAD = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
              b'"item_id":"%s","output_index":%d,"content_index":0,"delta":')
_ARGS_HEAD = (b'event: response.function_call_arguments.delta\ndata: {"type":'
              b'"response.function_call_arguments.delta","item_id":"%s","output_index":%d,'
              b'"delta":')


class _Item:
    """An output item being streamed: where it is, and what it holds so far."""

    __slots__ = ("index", "id", "kind", "parts", "call_id", "name", "head")

    def __init__(self, index: int, kind: str, call_id: str = "", name: str = "") -> None:
        self.index = index
        self.kind = kind
        self.id = new_id("msg" if kind == "message" else "fc")
        self.parts: list[str] = []  # the message's text, or the call's arguments
        self.call_id = call_id
        self.name = name
        self.head = (_TEXT_HEAD if kind == "message" else _ARGS_HEAD) % (
            self.id.encode(), index)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def done(self, status: str = "completed") -> dict:
        if self.kind == "message":
            return message_item(self.text, status, self.id)
        return call_item(self.call_id, self.name, self.text, status, self.id)


class ResponseStream(Reply):
    """The stream half of a /v1/responses Translator: ``feed`` one upstream event,
    ``close`` at its end, ``cut`` when it broke."""

    def __init__(self, req: dict) -> None:
        super().__init__(req)
        self._seq = 0
        self._started = False
        self._over = False  # the terminal event went out
        self._output: dict[int, dict] = {}  # output_index -> the finished item
        self._text: _Item | None = None  # the message item open now
        self._calls: dict[int, _Item] = {}  # Chat tool_calls index -> its open item
        self._finish: str | None = None
        self._usage: Any = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        fields = {"type": kind, **fields, "sequence_number": self._seq}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(fields) + b"\n\n"

    def _start(self, out: list[bytes]) -> None:
        if not self._started:
            self._started = True
            for kind in ("response.created", "response.in_progress"):
                out.append(self._event(kind, response=self.response("in_progress", [], None)))

    def feed(self, event: bytes) -> bytes:
        data = sse_data(event)
        if self._over or data is None:
            return b""
        out: list[bytes] = []
        if data.strip() == b"[DONE]":
            self._end(out)
            return b"".join(out)
        try:
            chunk = _chunk.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return b""  # a comment, a keep-alive, or not a chunk: nothing to say
        self._start(out)
        if chunk.error is not None:
            err = _dict(chunk.error)
            self._fail(out, str(err.get("message") or "upstream error"),
                       str(err.get("code") or "upstream_error"))
            return b"".join(out)
        if chunk.usage:
            self._usage = chunk.usage
        for choice in chunk.choices or ():
            if choice.index == 0:
                self._choice(out, choice)
        return b"".join(out)

    def _choice(self, out: list[bytes], choice: _Choice) -> None:
        delta = choice.delta
        if delta is not None:
            if delta.content:
                self._text_delta(out, delta.content)
            for j, call in enumerate(delta.tool_calls or ()):
                self._call_delta(out, call, j)
        if choice.finish_reason:
            self._finish = choice.finish_reason
            self._close_items(out)

    def _delta(self, item: _Item, text: str, tail: bytes) -> bytes:
        """A delta event from the item's head: only the delta and the number encoded."""
        item.parts.append(text)
        seq = self._seq
        self._seq += 1
        return b"%s%s%s%d}\n\n" % (item.head, _encode(text), tail, seq)

    def _text_delta(self, out: list[bytes], text: str) -> None:
        item = self._text
        if item is None:
            item = self._text = _Item(self._next_index(), "message")
            out.append(self._event("response.output_item.added", output_index=item.index,
                                   item={**message_item("", "in_progress", item.id),
                                         "content": []}))
            out.append(self._event("response.content_part.added", **self._where(item),
                                   part={"type": "output_text", "text": "",
                                         "annotations": []}))
        out.append(self._delta(item, text, b',"logprobs":[],"sequence_number":'))

    def _call_delta(self, out: list[bytes], call: _Call, position: int) -> None:
        index = position if call.index is None else call.index
        fn = call.function or _Fn()
        item = self._calls.get(index)
        if item is None:
            self._close_text(out)  # a message's text is over once the calls begin
            item = self._calls[index] = _Item(self._next_index(), "function_call",
                                              call.id or new_id("call"), fn.name or "")
            out.append(self._event("response.output_item.added", output_index=item.index,
                                   item=item.done("in_progress")))
        if fn.arguments:
            out.append(self._delta(item, fn.arguments, b',"sequence_number":'))

    def output(self) -> list[dict]:
        return [self._output[i] for i in sorted(self._output)]

    def _next_index(self) -> int:
        return len(self._output) + (self._text is not None) + len(self._calls)

    @staticmethod
    def _where(item: _Item) -> dict:
        return {"item_id": item.id, "output_index": item.index, "content_index": 0}

    def _close_text(self, out: list[bytes], status: str = "completed") -> None:
        item, self._text = self._text, None
        if item is None:
            return
        out.append(self._event("response.output_text.done", **self._where(item),
                               text=item.text, logprobs=[]))
        out.append(self._event("response.content_part.done", **self._where(item),
                               part={"type": "output_text", "text": item.text,
                                     "annotations": []}))
        self._item_done(out, item)

    def _item_done(self, out: list[bytes], item: _Item, status: str = "completed") -> None:
        done = self._output[item.index] = item.done(status)
        out.append(self._event("response.output_item.done", output_index=item.index,
                               item=done))

    def _close_items(self, out: list[bytes], status: str = "completed") -> None:
        """Every open item done, in output_index order."""
        items = sorted([*([self._text] if self._text else []), *self._calls.values()],
                       key=lambda i: i.index)
        for item in items:
            if item is self._text:
                self._close_text(out, status)
                continue
            out.append(self._event("response.function_call_arguments.done", item_id=item.id,
                                   output_index=item.index, name=item.name,
                                   arguments=item.text))
            self._item_done(out, item, status)
        self._calls.clear()

    def _end(self, out: list[bytes]) -> None:
        """The upstream said it is done ([DONE], or its stream ended after a finish)."""
        self._start(out)
        if self._finish is None:
            self._fail(out, "the upstream's stream ended before the reply was complete",
                       "upstream_incomplete")
            return
        self._close_items(out)
        reason = INCOMPLETE.get(self._finish)
        status = "incomplete" if reason else "completed"
        out.append(self._event(f"response.{status}", response=self.response(
            status, self.output(), usage(self._usage), reason=reason)))
        self._over = True

    def _fail(self, out: list[bytes], message: str, code: str) -> None:
        """The open items ended incomplete, an `error` event with eldric's code, then
        response.failed (whose error code is one of the API's own: server_error)."""
        self._close_items(out, "incomplete")
        out.append(self._event("error", code=code, message=message, param=None))
        out.append(self._event("response.failed", response=self.response(
            "failed", self.output(), usage(self._usage) if self._usage else None,
            error={"code": "server_error", "message": message})))
        self._over = True

    def close(self) -> bytes:
        if self._over:
            return b""
        out: list[bytes] = []
        self._end(out)
        return b"".join(out)

    def cut(self, status: int, message: str, code: str) -> bytes:
        if self._over:
            return b""
        out: list[bytes] = []
        self._start(out)
        self._fail(out, message, code)
        return b"".join(out)
