"""Cohere's v2 Chat API <-> OpenAI's chat: the pure translation, both ways (no I/O).

Request: ``POST /v2/chat`` (https://docs.cohere.com/reference/chat): ``messages`` with
roles system / user / assistant / tool (a user's content a string or text and
``image_url`` parts; an assistant's ``tool_calls`` in OpenAI's own shape with its text as
``tool_plan``; a tool result ``{role: tool, tool_call_id, content}``), ``tools`` in
OpenAI's function shape, ``tool_choice`` ``REQUIRED`` / ``NONE``, ``max_tokens``,
``stop_sequences``, ``temperature``, ``p``, ``k``, ``seed``, ``frequency_penalty``,
``presence_penalty``, ``response_format`` ``{type: json_object, json_schema}``, ``stream``.

Reply: ``{id, finish_reason, message: {role, content: [{type: text|thinking, …}],
tool_plan, tool_calls, citations}, usage: {billed_units, tokens, cached_tokens}}``;
finish_reason COMPLETE / STOP_SEQUENCE / MAX_TOKENS / TOOL_CALL / ERROR / TIMEOUT.

Stream (https://docs.cohere.com/docs/streaming, /docs/tool-use-streaming): SSE events
``event: <type>`` + ``data: {"type": <type>, …}``: message-start, content-start,
content-delta (``delta.message.content.text`` or ``.thinking``), content-end,
tool-plan-delta (``delta.message.tool_plan``), tool-call-start (``delta.message.tool_calls``
a whole call, its arguments possibly empty), tool-call-delta (more
``delta.message.tool_calls.function.arguments``), tool-call-end, citation-start,
citation-end, message-end (``delta.finish_reason``, ``delta.usage``, ``delta.error``),
debug. Citations have no place in OpenAI's reply and are dropped (docs/backends.md says so).

Errors: ``{"message": "…"}`` (https://docs.cohere.com/reference/errors) with the status
kept, so 429 and 5xx fail over. Shapes checked against the official SDK's types
(cohere-ai/cohere-python, src/cohere/v2/types/, src/cohere/types/).
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.errors import error_json
from eldric.wire.native.outbound import Context, Outbound
from eldric.wire.anthropic_shared import sse_fields
from eldric.wire.native import chat_in, chat_out
from eldric.wire.native.refused import Refused

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# Cohere's own request fields a client may send beside OpenAI's (the openai SDK's
# extra_body): passed as they are.
PASSED = ("documents", "citation_options", "safety_mode", "thinking", "priority",
          "strict_tools")

# Cohere finish_reason -> OpenAI's. ERROR and TIMEOUT are failures, not finishes.
FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length",
          "TOOL_CALL": "tool_calls"}
FAILED = {"ERROR": (502, "upstream_error"), "TIMEOUT": (504, "upstream_timeout")}


def chat_request(body: dict, ctx: Context) -> tuple[chat_in.Conversation, dict]:
    """An OpenAI chat body -> (its Conversation, the /v2/chat JSON)."""
    conv = chat_in.read(body, model=ctx.model)
    messages: list[dict] = []
    if conv.system:
        messages.append({"role": "system", "content": conv.system})
    for turn in conv.turns:
        messages.append(_message(turn))
    out: dict[str, Any] = {"model": conv.model, "messages": messages, "stream": conv.stream}
    tools = conv.tools
    if conv.tool_choice not in ("auto", "none", "required"):
        # Cohere cannot be told which tool: offering it that one tool alone, REQUIRED, is
        # the same request in its terms.
        tools = [t for t in tools if t.name == conv.tool_choice]
    if tools:
        out["tools"] = [{"type": "function", "function": {
            "name": t.name, "parameters": t.parameters,
            **({"description": t.description} if t.description else {})}} for t in tools]
        if conv.tool_choice == "none":
            out["tool_choice"] = "NONE"
        elif conv.tool_choice != "auto":
            out["tool_choice"] = "REQUIRED"
    s = conv.sampling
    for key, value in (("max_tokens", s.max_tokens), ("temperature", s.temperature),
                       ("p", s.top_p), ("k", s.top_k), ("seed", s.seed),
                       ("frequency_penalty", s.frequency_penalty),
                       ("presence_penalty", s.presence_penalty)):
        if value is not None:
            out[key] = value
    if s.stop:
        out["stop_sequences"] = s.stop
    if s.json_mode:
        out["response_format"] = {"type": "json_object",
                                  **({"json_schema": s.json_schema} if s.json_schema else {})}
    out.update({k: body[k] for k in PASSED if body.get(k) is not None})
    return conv, out


def _message(turn: chat_in.Turn) -> dict:
    if turn.role == "tool":
        result = turn.parts[0]
        assert isinstance(result, chat_in.ToolResult)
        return {"role": "tool", "tool_call_id": result.call_id, "content": result.content}
    if turn.role == "assistant":
        msg: dict[str, Any] = {"role": "assistant"}
        calls = [p for p in turn.parts if isinstance(p, chat_in.ToolCall)]
        if calls:
            msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.name, "arguments": c.arguments_text or _encode(c.arguments).decode()}}
                for c in calls]
            if turn.text:
                msg["tool_plan"] = turn.text  # what Cohere's own reply calls the text beside calls
        else:
            msg["content"] = turn.text
        return msg
    if all(isinstance(p, chat_in.Text) for p in turn.parts):
        return {"role": "user", "content": turn.text}
    content: list[dict] = []
    for p in turn.parts:
        if isinstance(p, chat_in.Text):
            content.append({"type": "text", "text": p.text})
        elif isinstance(p, chat_in.Image):
            # Cohere takes a web URL or a base64 data URI as it is.
            url = p.url or f"data:{p.media_type};base64,{p.data}"
            content.append({"type": "image_url", "image_url": {
                "url": url, **({"detail": p.detail} if p.detail else {})}})
    return {"role": "user", "content": content}


def usage_of(usage: Any) -> tuple[int, int] | None:
    """(prompt, completion) from Cohere's usage: the model's own token counts, else the
    billed ones."""
    if not isinstance(usage, dict):
        return None
    for key in ("tokens", "billed_units"):
        counts = usage.get(key)
        if isinstance(counts, dict) and ("input_tokens" in counts or "output_tokens" in counts):
            return int(counts.get("input_tokens") or 0), int(counts.get("output_tokens") or 0)
    return None


def reply_of(raw: bytes, what: str) -> dict:
    """A whole Cohere reply's JSON object; ValueError (the backend's failure) if not."""
    try:
        reply = _decode(raw)
    except msgspec.DecodeError as e:
        raise ValueError(f"Cohere's {what} reply is not JSON: {e}") from None
    if not isinstance(reply, dict):
        raise ValueError(f"Cohere's {what} reply is not an object")
    return reply


def error(status: int, raw: bytes) -> tuple[int, bytes]:
    """A Cohere error reply ({"message": …}) -> (status, OpenAI error JSON), status kept:
    429 and 5xx fail over, 4xx are the client's. 499 (Cohere's "request cancelled")
    is not the client's doing here: a 502."""
    status = 502 if status == 499 or status < 400 else status
    return status, chat_out.api_error(status, raw, "message")


class ChatEgress:
    """One /v1/chat/completions request to Cohere's /v2/chat."""

    def __init__(self, body: dict, ctx: Context):
        self.conv, self._native = chat_request(body, ctx)
        self.stream = self.conv.stream
        self.done = False
        self.usage: tuple[int, int] | None = None
        self._writer = chat_out.ChunkWriter(
            self.conv.model, include_usage=self.conv.include_usage or ctx.include_usage)
        self._tools: dict[int, int] = {}  # Cohere's tool-call index -> the OpenAI index
        self._cached: int | None = None
        self._failed = False

    def outbound(self) -> Outbound:
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if self.stream else "application/json"}
        return Outbound("/v2/chat", _encode(self._native), headers=headers, framing="sse")

    def whole(self, raw: bytes) -> bytes:
        reply = reply_of(raw, "chat")
        msg = reply.get("message")
        if not isinstance(msg, dict):
            raise ValueError("Cohere's reply has no message")
        reason = reply.get("finish_reason")
        if reason in FAILED:
            raise ValueError(f"Cohere answered finish_reason {reason}")
        text, thinking = [], []
        for item in msg.get("content") or []:
            if isinstance(item, dict) and item.get("type") == "text":
                text.append(str(item.get("text") or ""))
            elif isinstance(item, dict) and item.get("type") == "thinking":
                thinking.append(str(item.get("thinking") or ""))
        calls = [chat_out.tool_call(c["function"].get("name") or "",
                                    c["function"].get("arguments") or "{}", c.get("id"))
                 for c in msg.get("tool_calls") or []
                 if isinstance(c, dict) and isinstance(c.get("function"), dict)]
        content = "".join(text) or (msg.get("tool_plan") if calls else None) or None
        self.usage = usage_of(reply.get("usage"))
        prompt, completion = self.usage or (None, None)
        out = chat_out.completion(
            self.conv.model, text=content, tool_calls=calls or None,
            finish_reason=FINISH.get(reason, "tool_calls" if calls else "stop"),
            prompt_tokens=prompt, completion_tokens=completion,
            reasoning="".join(thinking) or None)
        cached = (reply.get("usage") or {}).get("cached_tokens")
        if cached and "usage" in out:
            out["usage"]["prompt_tokens_details"] = {"cached_tokens": int(cached)}
        return _encode(out)

    def feed(self, frame: bytes) -> list[bytes]:
        if self.done:
            return []
        name, data = sse_fields(frame)
        if data is None or data == b"[DONE]":
            return []
        try:
            event = _decode(data)
        except msgspec.DecodeError:
            return self._fail(502, "Cohere sent an event that is not JSON")
        if not isinstance(event, dict):
            return []
        kind = event.get("type") or name
        delta = event.get("delta") if isinstance(event.get("delta"), dict) else {}
        message = delta.get("message") if isinstance(delta.get("message"), dict) else {}
        w = self._writer
        if kind == "message-start":
            return []  # the role goes out with the first content: a failure before it fails over
        if kind == "content-delta":
            content = message.get("content") if isinstance(message.get("content"), dict) else {}
            return w.reasoning(content.get("thinking")) + w.text(content.get("text"))
        if kind == "tool-plan-delta":
            return w.text(message.get("tool_plan"))
        if kind == "tool-call-start":
            call = message.get("tool_calls") if isinstance(message.get("tool_calls"), dict) else {}
            fn = call.get("function") if isinstance(call.get("function"), dict) else {}
            index, out = w.tool(str(fn.get("name") or ""), call.get("id"),
                                str(fn.get("arguments") or ""))
            self._tools[event.get("index", len(self._tools))] = index
            return out
        if kind == "tool-call-delta":
            call = message.get("tool_calls") if isinstance(message.get("tool_calls"), dict) else {}
            fn = call.get("function") if isinstance(call.get("function"), dict) else {}
            index = self._tools.get(event.get("index", -1), w.tools_called - 1)
            return w.tool_args(index, str(fn.get("arguments") or "")) if index >= 0 else []
        if kind == "message-end":
            return self._end(delta)
        return []  # content-start/-end, tool-call-end, citation-*, debug: nothing to say

    def _end(self, delta: dict) -> list[bytes]:
        reason = delta.get("finish_reason")
        usage = delta.get("usage")
        self.usage = usage_of(usage) or self.usage
        if isinstance(usage, dict) and usage.get("cached_tokens"):
            self._cached = int(usage["cached_tokens"])
        if reason in FAILED or delta.get("error"):
            status, code = FAILED.get(reason, (502, "upstream_error"))
            return self._fail(status, str(delta.get("error") or f"Cohere ended with {reason}"),
                              code)
        self.done = True
        return self._writer.finish(FINISH.get(reason, "stop"))

    def _fail(self, status: int, message: str, code: str = "upstream_error") -> list[bytes]:
        if not self._writer.started:  # nothing sent: the error reply it stands for
            raise Refused(status, error_json(status, message, code=code))
        self.done = self._failed = True
        return [chat_out.error_event(status, message, code)]

    def finish(self) -> list[bytes]:
        if self._failed:
            return []
        w = self._writer
        return w.finish("tool_calls" if w.tools_called else "stop") + w.end(self.usage, self._cached)

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        return error(status, raw)

    def follow(self, raw: bytes) -> Outbound | None:
        return None
