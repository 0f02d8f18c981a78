"""OpenAI chat completions <-> a SageMaker real-time endpoint, pure, no I/O.

InvokeEndpoint ``POST /endpoints/{EndpointName}/invocations`` and
InvokeEndpointWithResponseStream ``…/invocations-response-stream``
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html,
API_runtime_InvokeEndpointWithResponseStream.html): the body goes to the container as
it is; a streamed reply is AWS event-stream ``PayloadPart`` events whose bytes are the
container's own stream cut anywhere (a line may span two parts), or a
``ModelStreamError`` / ``InternalStreamFailure`` exception. What the body is depends on
the container:

- **TGI** (Hugging Face's LLM container, ``Tgi``): ``{"inputs", "parameters", "stream"}``
  (TGI's compat route, https://huggingface.github.io/text-generation-inference/): the
  reply ``[{"generated_text", "details": {"finish_reason": length|eos_token|stop_sequence,
  "generated_tokens"}}]``; streamed, TGI's SSE ``data:{"token": {"text", "special"},
  "generated_text", "details"}`` lines, the last with ``details``; an error line
  ``data:{"error", "error_type"}``. The conversation goes as one prompt
  (Conversation.prompt()): no chat template, no tools (eldric's XML emulation), no images.
- **LMI** (DJL's Large Model Inference container, ``Lmi``): the chat completions schema,
  ``messages`` and OpenAI's sampling fields, tools too
  (https://docs.djl.ai/docs/serving/serving/docs/lmi/user_guides/chat_input_output_schema.html):
  the reply a chat.completion; streamed, ``chat.completion.chunk`` JSON lines
  (``application/jsonlines``; an SSE ``data:`` prefix is taken too), finish reasons
  ``length``, ``eos_token``, ``stop_sequence``. TGI 1.4+ takes this schema on
  ``/invocations`` too.

Errors: a container's own failure is SageMaker's ModelError (424) carrying its
``OriginalStatusCode`` and ``OriginalMessage``: a 429 there fails over, another 4xx is
the client's 400, a 5xx a 502; ServiceUnavailable 503 and ModelNotReady 429 fail over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from eldric.errors import BadRequest, error_json
from eldric.wire.native import chat_in, chat_out
from eldric.wire.native.refused import Refused

if TYPE_CHECKING:
    from eldric.backends.egress import Context

_encode = msgspec.json.encode
_decode = msgspec.json.decode

FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop", "stop": "stop",
          "tool_calls": "tool_calls", "content_filter": "content_filter"}
# SageMaker's own errors by status (ModelError, 424, is read for the container's status)
_STATUS = {400: (400, "invalid_request"), 429: (429, "rate_limit_exceeded"),
           503: (503, "upstream_overloaded"), 500: (500, "upstream_error"),
           530: (502, "upstream_error"), 404: (404, "model_not_found")}
# LMI's chat fields passed on (its schema, plus tools from its tool-calling guide)
_LMI_FIELDS = ("messages", "max_tokens", "temperature", "top_p", "stop", "seed", "n",
               "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs",
               "logit_bias", "user", "ignore_eos", "tools", "tool_choice", "response_format")


def endpoint_path(name: str, stream: bool) -> str:
    return f"/endpoints/{quote(name, safe='')}/" + (
        "invocations-response-stream" if stream else "invocations")


def _message(raw: str) -> str:
    """TGI's and LMI's own error text inside a message (their JSON body), else it."""
    try:
        data = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return raw
    if isinstance(data, dict):
        for key in ("error", "message", "Message", "detail"):
            if isinstance(data.get(key), str):
                return data[key]
    return raw


def error(status: int, raw: bytes) -> tuple[int, bytes | None]:
    """A SageMaker error reply -> (the status eldric answers, OpenAI error JSON); the
    JSON is None for a body that is not SageMaker's (the caller normalises it)."""
    try:
        data = _decode(raw) if raw else None
    except (msgspec.DecodeError, UnicodeDecodeError):
        data = None
    said = (data.get("Message") or data.get("message")) if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(said, str):
        return (status if status >= 400 else 502), None
    message: str = said
    if status == 424:  # ModelError: the container answered an error of its own
        original = data.get("OriginalStatusCode")
        text = data.get("OriginalMessage")
        message = _message(text) if isinstance(text, str) and text else message
        if original == 429:
            return 429, error_json(429, message, code="rate_limit_exceeded")
        if isinstance(original, int) and 400 <= original < 500:
            return 400, error_json(400, message, code="invalid_request")
        return 502, error_json(502, message, code="upstream_error")
    mapped, code = _STATUS.get(status, (status if status >= 400 else 502, "upstream_error"))
    return mapped, error_json(mapped, message, code=code)


class Endpoint:
    """What both containers share: the line buffer over PayloadPart bytes, the end of
    the stream (eldric/backends/native/sagemaker.py adds the request and the framing)."""

    def __init__(self, body: dict, ctx: Context, conv: chat_in.Conversation):
        self.model = ctx.model
        self.stream = conv.stream
        self.done = False
        self.usage: tuple[int, int] | None = None
        self._options = ctx.options
        self._out = chat_out.ChunkWriter(ctx.model, include_usage=conv.include_usage)
        self._buf = b""
        self._errored = False
        self._sent = False  # events went out: after them a failure is an error event
        self._reason: str | None = None
        self._body = b""

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        headers["X-Amzn-SageMaker-Accept" if self.stream else "Accept"] = (
            "application/json")
        for option, header in (("inference_component", "X-Amzn-SageMaker-Inference-Component"),
                               ("target_variant", "X-Amzn-SageMaker-Target-Variant")):
            value = self._options.get(option)
            if isinstance(value, str) and value:
                headers[header] = value
        return headers

    def event(self, kind: str, failed: bool, payload: bytes) -> list[bytes]:
        """One event-stream message (its event or exception type, its payload). A
        failure before any event went out (a ModelStreamError, the container's error
        line as the stream's first) is the error reply it stands for: Refused, so the
        call fails over on 429/5xx instead of sending the client an error event."""
        out = self._event(kind, failed, payload)
        self._sent = self._sent or bool(out)
        return out

    def _event(self, kind: str, failed: bool, payload: bytes) -> list[bytes]:
        if self.done:
            return []
        if failed:  # ModelStreamError, InternalStreamFailure
            return self._fail(502, f"{kind}: {_message(payload.decode('utf-8', 'replace'))}")
        if kind != "PayloadPart":
            return []
        self._buf += payload
        *lines, self._buf = self._buf.split(b"\n")
        out: list[bytes] = []
        for line in lines:
            self._sent = self._sent or bool(out)  # a failure after these is an event
            line = line.strip()
            if line.startswith(b"data:"):
                line = line[5:].strip()
            if not line or line == b"[DONE]" or line.startswith((b"event:", b":")):
                continue
            try:
                obj = _decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError):
                return out + self._fail(502, "the endpoint streamed a line that is not JSON")
            if isinstance(obj, dict):
                out += self._line(obj)
            if self.done:
                break
        return out

    def _line(self, obj: dict) -> list[bytes]:
        raise NotImplementedError

    def _fail(self, status: int, message: str, code: str = "upstream_error") -> list[bytes]:
        if not self._sent:
            raise Refused(status, error_json(status, message, code=code))
        self.done = self._errored = True
        return [chat_out.error_event(status, message, code)]

    def finish(self) -> list[bytes]:
        if self._errored:
            return []
        w = self._out
        reason = FINISH.get(self._reason or "", "stop")
        if w.tools_called and reason == "stop":
            reason = "tool_calls"
        return w.start() + w.finish(reason) + w.end(self.usage)


class Tgi(Endpoint):
    """A TGI container: one prompt in, TGI's generate reply and token stream out."""

    def __init__(self, body: dict, ctx: Context):
        conv = chat_in.read(body, model=ctx.model)
        if conv.has_images:
            raise BadRequest("this SageMaker endpoint (TGI, a text prompt) takes no images",
                             param="messages")
        if conv.tools:
            raise BadRequest("this SageMaker endpoint (TGI, a text prompt) has no tool "
                             "calling", param="tools")
        super().__init__(body, ctx, conv)
        s = conv.sampling
        params: dict[str, Any] = {"details": True, "return_full_text": False}
        if s.max_tokens is not None:
            params["max_new_tokens"] = s.max_tokens
        greedy = s.temperature is not None and s.temperature <= 0
        if s.temperature:  # TGI refuses 0; 0 means greedy, its default
            params["temperature"] = s.temperature
            params["do_sample"] = True
        # TGI samples whenever top_p < 1 or top_k is set (sampling = do_sample or
        # has_warpers), so a greedy request sends neither (eldric/wire/native/tgi.py)
        if s.top_p is not None and 0 < s.top_p < 1 and not greedy:  # TGI takes (0, 1)
            params["top_p"] = s.top_p
        if s.top_k and not greedy:
            params["top_k"] = s.top_k
        if s.stop:
            params["stop"] = s.stop
        if s.seed is not None:
            params["seed"] = s.seed
        self._body = _encode({"inputs": conv.prompt(), "parameters": params,
                              "stream": conv.stream})

    def whole(self, raw: bytes) -> bytes:
        data = _decode(raw)
        gen = data[0] if isinstance(data, list) else data
        if not isinstance(gen, dict) or not isinstance(gen.get("generated_text"), str):
            raise ValueError("not TGI's generate reply")
        details = gen.get("details") or {}
        tokens = details.get("generated_tokens")
        if isinstance(tokens, int):
            self.usage = (0, tokens)  # TGI tells no prompt count without prefill details
        return _encode(chat_out.completion(
            self.model, text=gen["generated_text"],
            finish_reason=FINISH.get(details.get("finish_reason") or "", "stop"),
            prompt_tokens=0 if isinstance(tokens, int) else None,
            completion_tokens=tokens if isinstance(tokens, int) else None))

    def _line(self, obj: dict) -> list[bytes]:
        if isinstance(obj.get("error"), str):
            # TGI's error_type as its HTTP status would say: overloaded 429 (tried
            # elsewhere), validation the client's 400, the rest the backend's 502
            kind = obj.get("error_type")
            status = 429 if kind == "overloaded" else 400 if kind == "validation" else 502
            code = {429: "rate_limit_exceeded", 400: "invalid_request"}.get(status,
                                                                            "upstream_error")
            return self._fail(status, obj["error"], code)
        token = obj.get("token") or {}
        out = [] if token.get("special") else self._out.text(token.get("text"))
        details = obj.get("details")
        if isinstance(details, dict):
            self._reason = details.get("finish_reason")
            tokens = details.get("generated_tokens")
            if isinstance(tokens, int):
                self.usage = (int(details.get("input_length") or 0), tokens)
            self.done = True
        return out


class Lmi(Endpoint):
    """An LMI container (or TGI 1.4+): OpenAI's chat schema both ways."""

    def __init__(self, body: dict, ctx: Context):
        conv = chat_in.read(body, model=ctx.model)  # checks it as every native API does
        super().__init__(body, ctx, conv)
        self._body = _encode({**{k: body[k] for k in _LMI_FIELDS if k in body},
                              "stream": conv.stream})
        self._calls: dict[int, int] = {}  # the container's tool call index -> ours

    def whole(self, raw: bytes) -> bytes:
        data = _decode(raw)
        choice = data["choices"][0]
        msg = choice.get("message") or {}
        u = data.get("usage") or {}
        if u:
            self.usage = (int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
        calls = [chat_out.tool_call(c["function"]["name"], c["function"].get("arguments"),
                                    c.get("id")) for c in msg.get("tool_calls") or []]
        reason = FINISH.get(choice.get("finish_reason") or "", "stop")
        return _encode(chat_out.completion(
            self.model, text=msg.get("content"), tool_calls=calls or None,
            finish_reason="tool_calls" if calls and reason == "stop" else reason,
            prompt_tokens=self.usage[0] if self.usage else None,
            completion_tokens=self.usage[1] if self.usage else None))

    def _line(self, obj: dict) -> list[bytes]:
        if isinstance(obj.get("error"), (str, dict)):
            err = obj["error"]
            return self._fail(502, err if isinstance(err, str) else str(err.get("message")))
        u = obj.get("usage")
        if isinstance(u, dict):
            self.usage = (int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
        out: list[bytes] = []
        w = self._out
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            out += w.text(delta.get("content"))
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                theirs = call.get("index", 0)
                if theirs not in self._calls:
                    self._calls[theirs], first = w.tool(str(fn.get("name") or ""),
                                                        call.get("id"), fn.get("arguments") or "")
                    out += first
                else:
                    out += w.tool_args(self._calls[theirs], fn.get("arguments") or "")
            if choice.get("finish_reason"):
                self._reason = choice["finish_reason"]
                self.done = True
        return out
