"""A backend's chat.completion.chunk stream -> Anthropic's Messages event stream.

Event flow (https://docs.anthropic.com/en/docs/build-with-claude/streaming): message_start
(a Message with empty content), then for each content block content_block_start, its
deltas (text_delta, input_json_delta) and content_block_stop, then message_delta (the
stop_reason and the cumulative usage) and message_stop. Every event carries its `event:`
line: the anthropic SDK skips unnamed events. Anthropic has one block open at a time, so
a text after a tool call, or a second tool call, opens the next block.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from eldric.wire.anthropic_shared import (STATUS_OF_OPENAI_TYPE, anthropic_usage, named_event,
                                          sse_fields, stop_reason)
from eldric.wire.dialect import ANTHROPIC

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def message_id(upstream_id: Any) -> str:
    """A msg_ id for a reply, from the backend's own id where it has one (logs match)."""
    if isinstance(upstream_id, str) and upstream_id:
        return "msg_" + upstream_id.removeprefix("chatcmpl-")
    return f"msg_{uuid.uuid4().hex}"


def tool_use_id(upstream_id: Any) -> str:
    return upstream_id if isinstance(upstream_id, str) and upstream_id else \
        f"toolu_{uuid.uuid4().hex[:24]}"


class MessageEvents:
    """Chat Completions SSE events in (each without its blank line), Anthropic events out.

    The message is only finished at the backend's ``[DONE]`` (its usage chunk, asked for
    with stream_options.include_usage, comes after the finish_reason); a backend that
    never sends it finishes at ``close()`` if it gave a finish_reason, else that is an
    early end, and the stream ends in an ``error`` event.
    """

    def __init__(self, model: str):
        self.model = model
        self.done = False  # message_stop or an error event sent: nothing more goes out
        self._started = False
        self._open = False  # a content block is open (at _index)
        self._index = -1
        self._text = False  # the open block is a text block
        self._tools: dict[Any, tuple[int, Any]] = {}  # a tool_calls index -> (block, id)
        self._finish: Any = None
        self._matched: Any = None  # the stop string the backend says it stopped on
        self._usage: Any = None

    def feed(self, event: bytes) -> bytes:
        _, data = sse_fields(event)
        if data is None or self.done:
            return b""
        if data.strip() == b"[DONE]":
            return self._end()
        try:
            chunk = _decode(data)
        except msgspec.DecodeError:
            return b""  # not a chunk: nothing the client could read either
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk:
            return self.error(chunk["error"])
        out = [] if self._started else [self._start(chunk)]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
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

    def _start(self, chunk: dict) -> bytes:
        self._started = True
        usage = {"input_tokens": anthropic_usage(chunk.get("usage"))["input_tokens"],
                 "output_tokens": 0}
        return named_event({"type": "message_start", "message": {
            "id": message_id(chunk.get("id")), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": usage}})

    def _choice(self, choice: dict, out: list[bytes]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            text = delta.get("content") or delta.get("refusal")
            if isinstance(text, str) and text:
                if not (self._open and self._text):
                    self._block(out, {"type": "text", "text": ""}, text=True)
                out.append(b'event: content_block_delta\ndata: {"type":"content_block_delta",'
                           b'"index":%d,"delta":{"type":"text_delta","text":%s}}\n\n'
                           % (self._index, _encode(text)))  # the bulk of a stream: no dict
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    self._tool(call, out)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
            self._matched = choice.get("stop_reason")

    def _tool(self, call: dict, out: list[bytes]) -> None:
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        at, cid = call.get("index", 0), call.get("id")
        known = self._tools.get(at)
        # Ollama's /v1 numbers every call of a parallel batch 0, told apart by their ids
        if known is None or (cid and cid != known[1]):
            self._block(out, {"type": "tool_use", "id": tool_use_id(cid),
                              "name": fn.get("name") or "", "input": {}}, text=False)
            self._tools[at] = (self._index, cid)
        args = fn.get("arguments")
        if isinstance(args, dict):  # a backend that sends the arguments as an object
            args = _encode(args).decode()
        if isinstance(args, str) and args:
            # a fragment of an earlier call (never seen from a backend) still goes to its block
            out.append(self._delta(self._tools[at][0],
                                   {"type": "input_json_delta", "partial_json": args}))

    def _block(self, out: list[bytes], block: dict, *, text: bool) -> None:
        self._stop_block(out)
        self._index += 1
        self._open, self._text = True, text
        out.append(named_event({"type": "content_block_start", "index": self._index,
                                "content_block": block}))

    def _stop_block(self, out: list[bytes]) -> None:
        if self._open:
            self._open = False
            out.append(named_event({"type": "content_block_stop", "index": self._index}))

    @staticmethod
    def _delta(index: int, delta: dict) -> bytes:
        return named_event({"type": "content_block_delta", "index": index, "delta": delta})

    def _end(self) -> bytes:
        out = [] if self._started else [self._start({})]
        self._stop_block(out)
        reason, sequence = stop_reason(self._finish, self._matched, bool(self._tools))
        out.append(named_event({"type": "message_delta",
                                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                "usage": anthropic_usage(self._usage)}))
        out.append(named_event({"type": "message_stop"}))
        self.done = True
        return b"".join(out)
