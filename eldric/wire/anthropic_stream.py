"""A backend's chat.completion.chunk stream -> Anthropic's Messages event stream.

Event flow (https://docs.anthropic.com/en/docs/build-with-claude/streaming): message_start
(a Message with empty content), then for each content block content_block_start, its
deltas (text_delta, input_json_delta) and content_block_stop, then message_delta (the
stop_reason and the cumulative usage) and message_stop. Every event carries its `event:`
line: the anthropic SDK skips unnamed events. Anthropic has one block open at a time, so
a text after a tool call, or a second tool call, opens the next block. A backend that
interleaves parallel calls' fragments (one for call 0 after call 1 began) would land them
on a closed block, so a call's block opens only once the open tool block's arguments are
a whole JSON object; until then its fragments wait (and go out at once when it opens).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from eldric.wire.anthropic_shared import (STATUS_OF_OPENAI_TYPE, anthropic_usage, named_event,
                                          sse_fields, stop_reason)
from eldric.wire.dialect import ANTHROPIC
from eldric.wire.openai_reply import Call, Choice, Reply, Usage, text

_encode = msgspec.json.encode
_decode = msgspec.json.decode
_chunk = msgspec.json.Decoder(Reply)


def message_id(upstream_id: Any) -> str:
    """A msg_ id for a reply, from the backend's own id where it has one (logs match)."""
    if isinstance(upstream_id, str) and upstream_id:
        return "msg_" + upstream_id.removeprefix("chatcmpl-")
    return f"msg_{uuid.uuid4().hex}"


def tool_use_id(upstream_id: Any) -> str:
    return upstream_id if isinstance(upstream_id, str) and upstream_id else \
        f"toolu_{uuid.uuid4().hex[:24]}"


class _Tool:
    """One tool call of the reply: its block once opened (None while it waits), its
    argument fragments."""

    __slots__ = ("block", "id", "name", "args")

    def __init__(self, cid: str | None, name: str):
        self.block: int | None = None
        self.id, self.name = cid, name
        self.args: list[str] = []

    def whole(self) -> bool:
        """Its arguments so far are a whole JSON object: nothing more can follow."""
        try:
            return isinstance(_decode("".join(self.args) or "null"), dict)
        except msgspec.DecodeError:
            return False


class MessageEvents:
    """Chat Completions SSE events in (each without its blank line), Anthropic events out.

    The message is only finished at the backend's ``[DONE]`` (its usage chunk, asked for
    with stream_options.include_usage, comes after the finish_reason); a backend that
    never sends it finishes at ``close()`` if it gave a finish_reason, else that is an
    early end, and the stream ends in an ``error`` event. A chunk that is not what the
    Chat Completions API promises (``choices: 5``) ends it in an ``error`` event too.
    """

    def __init__(self, model: str):
        self.model = model
        self.done = False  # message_stop or an error event sent: nothing more goes out
        self._started = False
        self._open = False  # a content block is open (at _index)
        self._index = -1
        self._text = False  # the open block is a text block
        self._tools: dict[int, _Tool] = {}  # a tool_calls index -> its call (the latest)
        self._current: _Tool | None = None  # the tool call whose block is open
        self._waiting: list[_Tool] = []  # calls whose block has not opened yet, in order
        self._called = False
        self._finish: str | None = None
        self._matched: str | int | None = None  # the stop string the backend stopped on
        self._usage: Usage | None = None

    def feed(self, event: bytes) -> bytes:
        _, data = sse_fields(event)
        if data is None or self.done:
            return b""
        if data.strip() == b"[DONE]":
            return self._end()
        try:
            chunk = _chunk.decode(data)
        except msgspec.ValidationError as exc:
            return self.cut(502, f"the backend sent a chunk that is not a chat completion "
                                 f"chunk: {exc}", "upstream_error")
        except msgspec.DecodeError:
            return b""  # not JSON: nothing the client could read either
        if chunk.error is not None:
            return self.error(chunk.error)
        out = [] if self._started else [self._start(chunk)]
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            if choice.index == 0:
                self._choice(choice, out)
        return b"".join(out)

    def close(self) -> bytes:
        if self.done:
            return b""
        if self._finish is not None:
            return self._end()
        return self.cut(502, "the backend ended the reply before it finished",
                        "upstream_error")

    def cut(self, status: int, message: str, code: str) -> bytes:
        if self.done:
            return b""
        self.done = True
        return ANTHROPIC.stream_error(status, message, code)

    def error(self, err: Any) -> bytes:
        """A backend's own error event mid-stream ({"error": {...}}; llama.cpp's and
        vLLM's carry the status as an int code)."""
        err = err if isinstance(err, dict) else {"message": err}
        code = err.get("code")
        status = code if isinstance(code, int) and 400 <= code <= 599 else \
            STATUS_OF_OPENAI_TYPE.get(err.get("type"), 500)
        return self.cut(status, str(err.get("message") or "the backend failed mid-reply"),
                        code if isinstance(code, str) else "upstream_error")

    # ------------------------------------------------------------ the events

    def _start(self, chunk: Reply) -> bytes:
        self._started = True
        usage = {"input_tokens": anthropic_usage(chunk.usage)["input_tokens"],
                 "output_tokens": 0}
        return named_event({"type": "message_start", "message": {
            "id": message_id(chunk.id), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": usage}})

    def _choice(self, choice: Choice, out: list[bytes]) -> None:
        delta = choice.delta
        if delta is not None:
            said = text(delta)
            if said:
                if not (self._open and self._text):
                    self._open_waiting(out, everything=True)
                    self._block(out, {"type": "text", "text": ""}, text=True)
                out.append(b'event: content_block_delta\ndata: {"type":"content_block_delta",'
                           b'"index":%d,"delta":{"type":"text_delta","text":%s}}\n\n'
                           % (self._index, _encode(said)))  # the bulk of a stream: no dict
            for call in delta.tool_calls or ():
                self._tool(call, out)
        if choice.finish_reason:
            self._finish = choice.finish_reason
            self._matched = choice.stop_reason

    def _tool(self, call: Call, out: list[bytes]) -> None:
        fn = call.function
        known = self._tools.get(call.index)
        # Ollama's /v1 numbers every call of a parallel batch 0, told apart by their ids
        if known is None or (call.id and call.id != known.id):
            known = self._tools[call.index] = _Tool(call.id, (fn.name if fn else None) or "")
            self._called = True
            self._waiting.append(known)
        args = fn.arguments if fn is not None else None
        if isinstance(args, dict):  # a backend that sends the arguments as an object
            args = _encode(args).decode()
        if args:
            known.args.append(args)
            if known.block is not None and known is not self._current:
                # a fragment for a block closed already (a text came between): still its own
                out.append(self._delta(known.block, args))
            elif known is self._current and self._open:
                out.append(self._delta(known.block, args))
        self._open_waiting(out, everything=False)

    def _open_waiting(self, out: list[bytes], *, everything: bool) -> None:
        """Open the blocks of the waiting calls, each with the fragments it gathered while
        it waited: while the open tool block's arguments are whole (nothing more of it can
        come), or all of them (a text, or the end, follows)."""
        while self._waiting and (everything or self._current is None
                                 or self._current.whole()):
            tool = self._waiting.pop(0)
            self._block(out, {"type": "tool_use", "id": tool_use_id(tool.id),
                              "name": tool.name, "input": {}}, text=False)
            tool.block, self._current = self._index, tool
            if tool.args:
                out.append(self._delta(tool.block, "".join(tool.args)))

    def _block(self, out: list[bytes], block: dict, *, text: bool) -> None:
        self._stop_block(out)
        self._index += 1
        self._open, self._text = True, text
        out.append(named_event({"type": "content_block_start", "index": self._index,
                                "content_block": block}))

    def _stop_block(self, out: list[bytes]) -> None:
        if self._open:
            self._open = False
            self._current = None
            out.append(named_event({"type": "content_block_stop", "index": self._index}))

    @staticmethod
    def _delta(index: int, fragment: str) -> bytes:
        return named_event({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": fragment}})

    def _end(self) -> bytes:
        out = [] if self._started else [self._start(Reply())]
        self._open_waiting(out, everything=True)
        self._stop_block(out)
        reason, sequence = stop_reason(self._finish, self._matched, self._called)
        out.append(named_event({"type": "message_delta",
                                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                "usage": anthropic_usage(self._usage)}))
        out.append(named_event({"type": "message_stop"}))
        self.done = True
        return b"".join(out)
