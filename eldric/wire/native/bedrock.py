"""OpenAI chat completions <-> Amazon Bedrock's Converse API, pure, no I/O.

Shapes from the API reference (and botocore's service model of bedrock-runtime
2023-09-30, which is the same text in JSON):
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html.

- Request ``POST /model/{modelId}/converse`` (``/converse-stream`` streamed):
  ``messages [{role: user|assistant, content: [ContentBlock]}]`` with the roles
  alternating and a user first; a ContentBlock is ``text``, ``image {format: png|jpeg|gif|
  webp, source: {bytes: <base64>}}``, ``toolUse {toolUseId, name, input}`` or
  ``toolResult {toolUseId, content: [{text}], status}`` (in a user message); ``system
  [{text}]``; ``inferenceConfig {maxTokens, temperature, topP, stopSequences}``;
  ``toolConfig {tools: [{toolSpec: {name, description, inputSchema: {json}}}],
  toolChoice: {auto: {}} | {any: {}} | {tool: {name}}}``; ``additionalModelRequestFields``
  (the model's own parameters, e.g. Anthropic's ``top_k``).
- Reply: ``{output: {message: {role, content}}, stopReason, usage: {inputTokens,
  outputTokens, totalTokens, cacheReadInputTokens}, metrics}``; a ``reasoningContent
  {reasoningText: {text, signature}}`` block is sent on as ``reasoning_content``.
- Stream (AWS event-stream, eldric/backends/eventstream.py): events ``messageStart
  {role}``, ``contentBlockStart {start: {toolUse: {toolUseId, name}}, contentBlockIndex}``,
  ``contentBlockDelta {delta: {text} | {toolUse: {input: <JSON text>}} |
  {reasoningContent: {text}}, contentBlockIndex}``, ``contentBlockStop``, ``messageStop
  {stopReason}``, ``metadata {usage, metrics}`` (the last); an exception message
  (``throttlingException``, ``modelStreamErrorException``, ``validationException``,
  ``internalServerException``, ``serviceUnavailableException``) ends it. Bedrock pads
  events with a ``p`` field of random length; it is ignored.
- Errors: the status and ``{"message": …}`` (the exception's name is in the
  ``x-amzn-ErrorType`` header, which the Egress does not see: the status tells them
  apart, ``ERRORS`` below), mapped for failover: throttling 429 and a model not ready
  (429) are tried elsewhere, ServiceUnavailable 503 too, a model timeout (408) is a 504.

Not translated (said in docs/backends.md): ``n > 1`` (refused by chat_in), ``seed``,
``presence_penalty``/``frequency_penalty`` (no Converse field; a model's own can go in
``options.additional_fields``), ``response_format`` json_object without a schema,
``logprobs``; an image given as an http(s) URL is fetched into bytes by the call first
(Adapter.inline_images), since Converse takes image bytes or S3 locations only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from eldric.errors import BadRequest, error_json
from eldric.wire.native import chat_in, chat_out
from eldric.wire.native.chat_in import Image, Text, ToolCall, ToolResult
from eldric.wire.native.refused import Refused

if TYPE_CHECKING:
    from eldric.backends.egress import Context

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# StopReason -> OpenAI finish_reason (the malformed_* reasons have no twin: a stop)
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
          "tool_use": "tool_calls", "guardrail_intervened": "content_filter",
          "content_filtered": "content_filter", "model_context_window_exceeded": "length"}

# An AWS exception (by its name, as a stream's :exception-type has it, lower camel case,
# or a reply's status) -> (the status eldric answers, its code). A 408 model timeout is a
# 504 and a 424 model error a 502, so both fail over like the rest of the 5xx.
ERRORS = {
    "throttlingexception": (429, "rate_limit_exceeded"),
    "modelnotreadyexception": (429, "model_not_ready"),
    "serviceunavailableexception": (503, "upstream_overloaded"),
    "internalserverexception": (500, "upstream_error"),
    "modeltimeoutexception": (504, "upstream_timeout"),
    "modelerrorexception": (502, "upstream_error"),
    "modelstreamerrorexception": (502, "upstream_error"),
    "validationexception": (400, "invalid_request"),
    "accessdeniedexception": (403, "permission_denied"),
    "resourcenotfoundexception": (404, "model_not_found"),
    "unrecognizedclientexception": (401, "invalid_api_key"),
    "invalidsignatureexception": (401, "invalid_api_key"),
    "expiredtokenexception": (401, "invalid_api_key"),
}
_BY_STATUS = {429: "throttlingexception", 503: "serviceunavailableexception",
              500: "internalserverexception", 408: "modeltimeoutexception",
              424: "modelerrorexception", 400: "validationexception",
              403: "accessdeniedexception", 404: "resourcenotfoundexception"}

_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


def model_path(model: str, op: str) -> str:
    """``/model/{modelId}/{op}``, the id URI-encoded as botocore's own client sends it
    (a path label: everything but ``-_.~`` and alphanumerics, so ``:`` is ``%3A`` and an
    ARN's ``/`` ``%2F``). SigV4 then encodes the path once more (botocore's signer does):
    AWS canonicalises a raw ``:`` to ``%3A`` before that, so a ``:`` sent raw and signed
    as it is fails (InvalidSignatureException for nearly every model id, ``…-v1:0``)."""
    return f"/model/{quote(model, safe='')}/{op}"


def _image(img: Image, where: str) -> dict:
    fmt = _FORMATS.get(img.media_type or "")
    if img.data is None or fmt is None:
        raise BadRequest("Bedrock takes images as png, jpeg, gif or webp bytes (a data: URL)",
                         param=where)
    return {"image": {"format": fmt, "source": {"bytes": img.data}}}


def _content(turn: chat_in.Turn, i: int) -> list[dict]:
    out: list[dict] = []
    for j, p in enumerate(turn.parts):
        if isinstance(p, Text):
            out.append({"text": p.text})
        elif isinstance(p, Image):
            out.append(_image(p, f"messages[{i}].content[{j}]"))
        elif isinstance(p, ToolCall):
            out.append({"toolUse": {"toolUseId": p.id, "name": p.name, "input": p.arguments}})
        elif isinstance(p, ToolResult):
            out.append({"toolResult": {"toolUseId": p.call_id,
                                       "content": [{"text": p.content}] if p.content else [],
                                       "status": "success"}})
    return out


def messages(conv: chat_in.Conversation) -> list[dict]:
    """The turns as Converse messages: tool results are user content, same-role
    neighbours merged (Converse wants user and assistant alternating, a user first)."""
    out = chat_in.alternating([("assistant" if t.role == "assistant" else "user", _content(t, i))
                               for i, t in enumerate(conv.turns)], "content")
    # A conversation that opens with the assistant is sent as it is: Bedrock's own 400
    # (ValidationException) says so better than a guess would.
    if not out:
        raise BadRequest("messages hold no content Bedrock can take", param="messages")
    return out


def _has_tool_blocks(msgs: list[dict]) -> bool:
    return any("toolUse" in b or "toolResult" in b for m in msgs for b in m["content"])


def request(conv: chat_in.Conversation, options: Any) -> dict:
    """The Converse request body (modelId is in the path)."""
    msgs = messages(conv)
    body: dict[str, Any] = {"messages": msgs}
    if conv.system:
        body["system"] = [{"text": conv.system}]
    s = conv.sampling
    inference: dict[str, Any] = {}
    if s.max_tokens is not None:
        inference["maxTokens"] = s.max_tokens
    if s.temperature is not None:
        inference["temperature"] = s.temperature
    if s.top_p is not None:
        inference["topP"] = s.top_p
    if s.stop:
        inference["stopSequences"] = [x for x in s.stop if x]
    if inference:
        body["inferenceConfig"] = inference
    # Converse has no "none": the tools are left out, unless the history holds tool
    # blocks, which Bedrock refuses without a toolConfig (the model may then call one).
    if conv.tools and (conv.tool_choice != "none" or _has_tool_blocks(msgs)):
        tools: dict[str, Any] = {"tools": [{"toolSpec": {
            "name": t.name, **({"description": t.description} if t.description else {}),
            "inputSchema": {"json": t.parameters}}} for t in conv.tools]}
        if conv.tool_choice == "required":
            tools["toolChoice"] = {"any": {}}
        elif conv.tool_choice not in ("auto", "none"):
            tools["toolChoice"] = {"tool": {"name": conv.tool_choice}}
        elif conv.tool_choice == "auto":
            tools["toolChoice"] = {"auto": {}}
        body["toolConfig"] = tools
    if s.json_schema is not None:
        body["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {
            "jsonSchema": {"schema": _encode(s.json_schema).decode(), "name": "response"}}}}
    extra: dict[str, Any] = {}
    if s.top_k is not None:
        extra["top_k"] = s.top_k  # the name Anthropic's and Mistral's models take
    more = options.get("additional_fields") if hasattr(options, "get") else None
    if isinstance(more, dict):
        extra.update(more)
    if extra:
        body["additionalModelRequestFields"] = extra
    return body


def usage_of(u: Any) -> tuple[int, int, int] | None:
    """(input, output, cache read) tokens of a TokenUsage."""
    if not isinstance(u, dict):
        return None
    return (int(u.get("inputTokens") or 0), int(u.get("outputTokens") or 0),
            int(u.get("cacheReadInputTokens") or 0))


def finish_reason(stop: Any, called: bool) -> str:
    reason = FINISH.get(stop, "stop") if isinstance(stop, str) else "stop"
    return "tool_calls" if called and reason == "stop" else reason


def completion(raw: bytes, model: str) -> tuple[bytes, tuple[int, int, int] | None]:
    """A ConverseResponse -> (the chat.completion JSON, its usage)."""
    resp = _decode(raw)
    msg = resp["output"]["message"]
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict] = []
    for block in msg.get("content") or []:
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            calls.append(chat_out.tool_call(str(use.get("name") or ""), use.get("input"),
                                            use.get("toolUseId") or None))
        elif isinstance(block.get("reasoningContent"), dict):
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if isinstance(text, str):
                reasoning.append(text)
    counts = usage_of(resp.get("usage"))
    body = chat_out.completion(
        model, text="".join(texts) if texts or not calls else None, tool_calls=calls or None,
        finish_reason=finish_reason(resp.get("stopReason"), bool(calls)),
        prompt_tokens=counts[0] if counts else None,
        completion_tokens=counts[1] if counts else None, reasoning="".join(reasoning) or None)
    if counts and counts[2]:
        body["usage"]["prompt_tokens_details"] = {"cached_tokens": counts[2]}
    return _encode(body), counts


def error(status: int, raw: bytes, name: str | None = None) -> tuple[int, bytes | None]:
    """A Bedrock error (a reply's status and body, or a stream's exception by name) ->
    (the status eldric answers, OpenAI error JSON); the JSON is None for a body that is
    not Bedrock's (a proxy's page: the caller normalises it)."""
    try:
        data = _decode(raw) if raw else None
    except (msgspec.DecodeError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and name is None:
        # a body that names its type itself (restJson1's __type / code)
        kind = data.get("__type") or data.get("code") or data.get("Code")
        if isinstance(kind, str):
            name = kind.split(":", 1)[0].rsplit("#", 1)[-1]
    key = (name or _BY_STATUS.get(status, "")).lower()
    message = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("Message")
    if key not in ERRORS or not isinstance(message, str):
        return (status if status >= 400 else 502), None
    mapped, code = ERRORS[key]
    return mapped, error_json(mapped, message, code=code)


class Converse:
    """One chat request to Converse / ConverseStream, the pure half of its Egress
    (eldric/backends/native/bedrock.py adds the request and the framing)."""

    def __init__(self, body: dict, ctx: Context):
        conv = chat_in.read(body, model=ctx.model)
        self.model = ctx.model
        self.stream = conv.stream
        self.done = False
        self.usage: tuple[int, int] | None = None
        self.cached = 0
        self._body = _encode(request(conv, ctx.options))
        self._out = chat_out.ChunkWriter(ctx.model, include_usage=conv.include_usage)
        self._tools: dict[int, int] = {}  # contentBlockIndex -> the OpenAI tool call index
        self._reason: str | None = None
        self._errored = False
        self._sent = False  # events went out: after them an exception is an error event

    def _count(self, counts: tuple[int, int, int] | None) -> None:
        if counts is not None:
            self.usage, self.cached = counts[:2], counts[2]

    def whole(self, raw: bytes) -> bytes:
        try:
            body, counts = completion(raw, self.model)
        except (msgspec.DecodeError, UnicodeDecodeError, TypeError, KeyError,
                AttributeError) as exc:
            raise ValueError(f"not a ConverseResponse ({type(exc).__name__})") from None
        self._count(counts)
        return body

    def event(self, kind: str, failed: bool, payload: bytes) -> list[bytes]:
        """One event-stream message (its event or exception type, its payload). An
        exception before any event went out (a throttlingException as the stream's
        first message) is the error reply it stands for: Refused, so the call fails
        over on 429/5xx instead of sending the client an error event."""
        if self.done:
            return []
        if failed:
            status, body = error(0, payload, kind)
            if body is None:
                body = error_json(status, f"the backend failed: {kind}", code="upstream_error")
            if not self._sent:
                raise Refused(status, body)
            self.done = self._errored = True
            return [b"data: " + body + b"\n\n"]
        out = self._event(kind, payload)
        self._sent = self._sent or bool(out)
        return out

    def _event(self, kind: str, payload: bytes) -> list[bytes]:
        try:
            ev = _decode(payload) if payload else {}
        except (msgspec.DecodeError, UnicodeDecodeError):
            return self._fail(502, f"the backend sent a {kind} event that is not JSON")
        if not isinstance(ev, dict):
            return []
        w = self._out
        if kind == "contentBlockDelta":
            delta = ev.get("delta") or {}
            if isinstance(delta.get("text"), str):
                return w.text(delta["text"])
            if isinstance(delta.get("toolUse"), dict):
                index = self._tools.get(ev.get("contentBlockIndex", -1))
                text = delta["toolUse"].get("input")
                if index is None or not isinstance(text, str):
                    return []
                return w.tool_args(index, text)
            if isinstance(delta.get("reasoningContent"), dict):
                text = delta["reasoningContent"].get("text")
                return w.reasoning(text) if isinstance(text, str) else []
            return []
        if kind == "contentBlockStart":
            use = (ev.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                index, out = w.tool(str(use.get("name") or ""), use.get("toolUseId") or None)
                self._tools[ev.get("contentBlockIndex", -1)] = index
                return out
            return []
        if kind == "messageStart":
            # the role goes out with the first content (ChunkWriter adds it), so that
            # an exception right after messageStart can still fail over
            return []
        if kind == "messageStop":
            self._reason = ev.get("stopReason")
            return w.finish(finish_reason(self._reason, w.tools_called > 0))
        if kind == "metadata":
            self._count(usage_of(ev.get("usage")))
            self.done = True  # the last event ConverseStream sends
        return []  # contentBlockStop, and events added later

    def _fail(self, status: int, message: str) -> list[bytes]:
        if not self._sent:
            raise Refused(status, error_json(status, message, code="upstream_error"))
        self.done = self._errored = True
        return [chat_out.error_event(status, message)]

    def finish(self) -> list[bytes]:
        if self._errored:
            return []
        w = self._out
        out = w.start() + w.finish(finish_reason(self._reason, w.tools_called > 0))
        return out + w.end(self.usage, self.cached or None)



def model_ids(raw: bytes) -> list[str]:
    """ListFoundationModels' reply -> the model ids that put text out and can be called
    on demand by their id
    (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListFoundationModels.html):
    the list also holds provisioned-throughput-only variants (``…-v1:0:48k``) and models
    reached through an inference profile only, which Converse refuses by their id (a
    ValidationException); those profiles' ids go in ``options.models``."""
    data = _decode(raw)
    out = []
    for m in data.get("modelSummaries") or []:
        if isinstance(m, dict) and isinstance(m.get("modelId"), str) \
                and "TEXT" in (m.get("outputModalities") or ["TEXT"]) \
                and "ON_DEMAND" in (m.get("inferenceTypesSupported") or ["ON_DEMAND"]):
            out.append(m["modelId"])
    return out
