"""OpenAI chat completions and embeddings <-> Google's Gemini API, pure, no I/O.

The same generateContent shapes serve the Gemini API (``/v1beta/models/{m}:…``, key in
``x-goog-api-key``) and Vertex AI's Gemini models (``/v1/projects/{p}/locations/{l}/
publishers/google/models/{m}:…``, an OAuth token): the Egress of each is in
eldric/backends/native/gemini.py and vertex.py; here are the pure pieces they share.

- Request (https://ai.google.dev/api/generate-content#request-body): ``contents`` of
  ``{role: user|model, parts}``; a part is ``text``, ``inlineData {mimeType, data}`` (a
  data: URL's bytes), ``fileData {mimeType, fileUri}`` (an http(s) image URL: the API
  fetches public and signed URLs itself, https://ai.google.dev/gemini-api/docs/
  file-input-methods), ``functionCall {name, args}``, ``functionResponse {name,
  response}``; ``systemInstruction``; ``generationConfig`` (maxOutputTokens, temperature,
  topP, topK, stopSequences, seed, presencePenalty, frequencyPenalty, responseMimeType,
  responseSchema); ``tools [{functionDeclarations}]`` and ``toolConfig
  {functionCallingConfig {mode AUTO|ANY|NONE, allowedFunctionNames}}``
  (https://ai.google.dev/gemini-api/docs/function-calling).
- Reply (https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse):
  ``candidates[0].content.parts`` (``thought: true`` parts are thought summaries, sent on
  as ``reasoning_content``), ``finishReason`` (FINISH below), ``usageMetadata``
  (promptTokenCount, candidatesTokenCount, thoughtsTokenCount, cachedContentTokenCount),
  ``promptFeedback.blockReason`` when the prompt itself was blocked (no candidates).
- Stream: ``:streamGenerateContent?alt=sse``, one ``data: <GenerateContentResponse>``
  event per chunk, no end marker: the chunk with a finishReason is the last one. An
  error (``data: {"error": …}``) as its first event is the error reply it stands for
  (eldric.wire.native.refused: 429/5xx fail over); after content, one error event.
- Errors: google.rpc.Status JSON ``{"error": {"code", "message", "status", "details"}}``
  (https://ai.google.dev/gemini-api/docs/troubleshooting), mapped by ``STATUS`` below.
- Embeddings: ``:batchEmbedContents`` ``{"requests": [{model, content, outputDimensionality,
  taskType}]}`` -> ``{"embeddings": [{"values"}]}`` (https://ai.google.dev/api/embeddings).

Gemini 2.5+/3 models sign their function calls (``thoughtSignature``) and want the
signature back with the call in the next turn. OpenAI's clients carry only a tool call's
id back, so the signature rides in the id (``call_<hex>~<signature>``) and is restored
from it; an id without one is sent as it is.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

import msgspec

from eldric.errors import BadRequest, error_json
from eldric.wire.native import chat_in, chat_out, embed
from eldric.wire.native.chat_in import Image, Text, ToolCall, ToolResult
from eldric.wire.native.refused import Refused

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# Candidate.FinishReason -> OpenAI finish_reason. Every kind of block is a content
# filter; the reasons with no OpenAI twin (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, …)
# are a plain stop.
FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MODEL_ARMOR": "content_filter",
}

# google.rpc.Code name -> (the status eldric answers, eldric's code). A key Google refused
# is eldric's configuration, not the client's: a 502 another backend may answer (as the
# cloud role's key_refused), never the client's 401.
STATUS = {
    "INVALID_ARGUMENT": (400, "invalid_request"),
    "FAILED_PRECONDITION": (400, "failed_precondition"),
    "OUT_OF_RANGE": (400, "invalid_request"),
    "UNAUTHENTICATED": (502, "backend_auth_failed"),
    "PERMISSION_DENIED": (502, "backend_auth_failed"),
    "NOT_FOUND": (404, "model_not_found"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_exceeded"),
    "INTERNAL": (500, "upstream_error"),
    "UNKNOWN": (500, "upstream_error"),
    "UNAVAILABLE": (503, "upstream_unavailable"),
    "DEADLINE_EXCEEDED": (504, "upstream_timeout"),
}

_SIGNATURE = "~"  # between a tool call's own id and its thoughtSignature (base64 has no ~)


# ---------------------------------------------------------------- request: OpenAI -> Gemini

def request(conv: chat_in.Conversation, options: Any = None) -> dict:
    """A Conversation as a GenerateContentRequest body. `options` (the backend's):
    ``safety_settings`` (sent as safetySettings), ``generation_config`` (merged into
    generationConfig, e.g. thinkingConfig)."""
    options = options or {}
    out: dict[str, Any] = {"contents": _contents(conv.turns)}
    if conv.system:
        out["systemInstruction"] = {"parts": [{"text": conv.system}]}
    gen = _generation(conv.sampling)
    gen.update(options.get("generation_config") or {})
    if gen:
        out["generationConfig"] = gen
    if conv.tools:
        out["tools"] = [{"functionDeclarations": [_declaration(t) for t in conv.tools]}]
        out["toolConfig"] = {"functionCallingConfig": _calling(conv.tool_choice)}
    if options.get("safety_settings"):
        out["safetySettings"] = options["safety_settings"]
    return out


def _contents(turns: list[chat_in.Turn]) -> list[dict]:
    """Turns -> contents: assistant turns are the model's, tool results the user's; same-role
    neighbours one content (a model turn's parallel calls answered in one user turn)."""
    out = chat_in.alternating([("model" if turn.role == "assistant" else "user",
                                [_part(p, i) for p in turn.parts])
                               for i, turn in enumerate(turns)], "parts")
    if not out:
        raise BadRequest("messages hold no user or assistant content", param="messages")
    return out


def _part(p: chat_in.Part, i: int) -> dict:
    if isinstance(p, Text):
        return {"text": p.text}
    if isinstance(p, Image):
        if p.data is not None:
            return {"inlineData": {"mimeType": p.media_type, "data": p.data}}
        fd: dict[str, Any] = {"fileUri": p.url}
        if p.media_type:
            fd["mimeType"] = p.media_type
        return {"fileData": fd}
    if isinstance(p, ToolCall):
        call_id, _, signature = p.id.partition(_SIGNATURE)
        part: dict[str, Any] = {"functionCall": {"name": p.name, "args": p.arguments}}
        if signature:
            part["thoughtSignature"] = signature
        return part
    assert isinstance(p, ToolResult)
    if not p.name:
        raise BadRequest(f"tool result {p.call_id!r} answers no tool call of an earlier "
                         "assistant message (Gemini needs the function's name)",
                         param=f"messages[{i}].tool_call_id")
    return {"functionResponse": {"name": p.name, "response": _response(p.content)}}


def _response(content: str) -> dict:
    """A tool result as functionResponse.response, a JSON object: the result's own object,
    else ``{"output": …}`` (the key the API documents for a function's output)."""
    try:
        value = _decode(content) if content else content
    except (msgspec.DecodeError, UnicodeDecodeError):
        value = content
    return value if isinstance(value, dict) else {"output": value}


def _generation(s: chat_in.Sampling) -> dict:
    gen: dict[str, Any] = {}
    for key, value in (("maxOutputTokens", s.max_tokens), ("temperature", s.temperature),
                       ("topP", s.top_p), ("topK", s.top_k), ("seed", s.seed),
                       ("presencePenalty", s.presence_penalty),
                       ("frequencyPenalty", s.frequency_penalty)):
        if value is not None:
            gen[key] = value
    if s.stop:
        gen["stopSequences"] = s.stop
    if s.json_mode:
        gen["responseMimeType"] = "application/json"
        if s.json_schema is not None:
            # responseJsonSchema takes JSON Schema as written (responseSchema is the
            # OpenAPI subset, which refuses additionalProperties and friends)
            gen["responseJsonSchema"] = s.json_schema
    return gen


def _declaration(t: chat_in.Tool) -> dict:
    d: dict[str, Any] = {"name": t.name}
    if t.description:
        d["description"] = t.description
    # parametersJsonSchema: JSON Schema as OpenAI's clients write it (parameters is
    # the OpenAPI subset)
    d["parametersJsonSchema"] = t.parameters
    return d


def _calling(choice: str) -> dict:
    if choice == "auto":
        return {"mode": "AUTO"}
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    return {"mode": "ANY", "allowedFunctionNames": [choice]}


# ---------------------------------------------------------------- reply: Gemini -> OpenAI

def usage_of(meta: Any) -> tuple[int, int, int] | None:
    """usageMetadata -> (prompt, completion, cached); thinking is output, as OpenAI counts
    its reasoning tokens in completion_tokens."""
    if not isinstance(meta, dict) or "promptTokenCount" not in meta \
            and "candidatesTokenCount" not in meta:
        return None
    return (int(meta.get("promptTokenCount") or 0),
            int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0),
            int(meta.get("cachedContentTokenCount") or 0))


def _call_id(part: dict, call: dict) -> str:
    given = call.get("id")
    own = given if isinstance(given, str) and given else chat_out.call_id()
    signature = part.get("thoughtSignature")
    return f"{own}{_SIGNATURE}{signature}" if isinstance(signature, str) and signature else own


def _args(call: dict) -> str:
    return _encode(call.get("args") if isinstance(call.get("args"), dict) else {}).decode()


def _parts(resp: dict) -> tuple[list[dict], str | None]:
    """The first candidate's parts and its finishReason; a blocked prompt (no candidates,
    promptFeedback.blockReason) is no parts and SAFETY."""
    cands = resp.get("candidates")
    if not isinstance(cands, list) or not cands:
        feedback = resp.get("promptFeedback")
        blocked = isinstance(feedback, dict) and feedback.get("blockReason")
        return [], "SAFETY" if blocked else None
    cand: dict = cands[0] if isinstance(cands[0], dict) else {}
    content = cand.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        parts = []
    reason = cand.get("finishReason")
    return [p for p in parts if isinstance(p, dict)], reason if isinstance(reason, str) else None


def finish_reason(reason: str | None, called: bool) -> str:
    if called and reason in (None, "STOP"):
        return "tool_calls"
    return FINISH.get(reason or "STOP", "stop")


def completion(raw: bytes, model: str) -> tuple[bytes, tuple[int, int, int] | None]:
    """A whole GenerateContentResponse -> (the chat.completion JSON, its usage)."""
    resp = _decode(raw)
    if not isinstance(resp, dict):
        raise ValueError("a GenerateContentResponse is a JSON object")
    parts, reason = _parts(resp)
    if reason is None and not isinstance(resp.get("candidates"), list):
        raise ValueError("a GenerateContentResponse has candidates or a blocked prompt")
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict] = []
    for part in parts:
        if isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            calls.append(chat_out.tool_call(str(call.get("name") or ""), _args(call),
                                            _call_id(part, call)))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    counts = usage_of(resp.get("usageMetadata"))
    out = chat_out.completion(
        model, text="".join(texts) if texts or not calls else None, tool_calls=calls,
        finish_reason=finish_reason(reason, bool(calls)), reasoning="".join(thoughts) or None,
        id=resp.get("responseId") if isinstance(resp.get("responseId"), str) else None)
    if counts is not None:
        out["usage"] = chat_out.usage(*counts)
    return _encode(out), counts


def error(status: int, raw: bytes, upstream: str) -> tuple[int, bytes] | None:
    """A google.rpc.Status error reply (or a list of one, as the non-SSE stream sends it)
    -> (eldric's status, OpenAI error JSON); None for a body that is no Status (a proxy's
    page: the caller normalises it, eldric.stream.upstream_errors)."""
    err = _status_of(raw)
    if err is None:
        return None
    given = err.get("status")
    name = given if isinstance(given, str) else ""
    reasons = {d.get("reason") for d in err.get("details") or [] if isinstance(d, dict)}
    mapped, code = STATUS.get(name, (status, ""))
    if "API_KEY_INVALID" in reasons:  # a bad key comes as 400 INVALID_ARGUMENT
        mapped, code = STATUS["UNAUTHENTICATED"]
    message = str(err.get("message") or f"backend {upstream} answered HTTP {status}")
    if code == "backend_auth_failed":
        message = f"backend {upstream} refused its credentials (HTTP {status}): {message}"
    return mapped, error_json(mapped, message, code=code or name.lower() or None)


def retry_after(raw: bytes) -> str | None:
    """A google.rpc.Status error's RetryInfo detail (``"retryDelay": "18.3s"``, a
    Duration) as a Retry-After value in whole seconds, rounded up; None without one.
    Google says when to come back in the body only (its 429s have no Retry-After
    header), so without this eldric's client would not learn it."""
    err = _status_of(raw)
    for d in (err or {}).get("details") or []:
        if not isinstance(d, dict) or not str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        delay = d.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                seconds = float(delay[:-1])
            except ValueError:
                return None
            if seconds >= 0:
                return str(max(1, math.ceil(seconds)))
    return None


def _status_of(raw: bytes) -> dict | None:
    try:
        data = _decode(raw) if raw else None
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else None


def _sse_data(frame: bytes) -> bytes | None:
    """The data of one SSE event (its data: lines joined), None for a comment/empty one."""
    if frame.startswith(b"data: ") and b"\n" not in frame:  # what Gemini sends: one line
        return frame[6:]
    lines = [line[5:].lstrip(b" ") if line.startswith(b"data:") else None
             for line in frame.replace(b"\r\n", b"\n").split(b"\n")]
    data = [d for d in lines if d is not None]
    return b"\n".join(data) if data else None


class Stream:
    """The events of one streamGenerateContent reply, fed one SSE event at a time, as
    OpenAI chat chunk events. ``done`` once a chunk said it finished (or an error event
    went out); ``usage`` (prompt, completion) as the last chunk reported it."""

    def __init__(self, model: str, include_usage: bool):
        self.done = False
        self.usage: tuple[int, int] | None = None
        self.cached = 0
        self._out = chat_out.ChunkWriter(model, include_usage=include_usage)
        self._reason: str | None = None
        self._errored = False
        self._said = False  # an event went out (an error after it is a cut, not a reply)

    def count(self, counts: tuple[int, int, int] | None) -> None:
        if counts is not None:
            self.usage, self.cached = counts[:2], counts[2]

    def feed(self, frame: bytes) -> list[bytes]:
        if self.done:
            return []
        data = _sse_data(frame)
        if not data:
            return []
        try:
            resp = _decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return self._fail(502, "the backend sent a stream event that is not JSON")
        if not isinstance(resp, dict):
            return []
        if isinstance(resp.get("error"), dict):
            status, body = error(500, data, "gemini") or (500, b"")
            if not self._said:
                # nothing sent yet: the error reply it stands for (429/5xx fail over)
                raise Refused(status, body)
            self.done = self._errored = True
            return [b"data: " + body + b"\n\n"]
        out: list[bytes] = []
        parts, reason = _parts(resp)
        w = self._out
        for part in parts:
            if isinstance(part.get("functionCall"), dict):
                call = part["functionCall"]
                out += w.tool(str(call.get("name") or ""), _call_id(part, call), _args(call))[1]
            elif isinstance(part.get("text"), str):
                out += w.reasoning(part["text"]) if part.get("thought") else w.text(part["text"])
        self.count(usage_of(resp.get("usageMetadata")))
        self._said = self._said or bool(out)
        if reason is not None:
            self._reason = reason
            self.done = True
        return out

    def _fail(self, status: int, message: str) -> list[bytes]:
        self.done = self._errored = True
        return [chat_out.error_event(status, message)]

    def finish(self) -> list[bytes]:
        if self._errored:
            return []
        w = self._out
        out = w.start() + w.finish(finish_reason(self._reason, w.tools_called > 0))
        return out + w.end(self.usage, self.cached or None)


def model_path(model: str) -> str:
    """The Gemini API's resource path of a model ("models/" given or not)."""
    name = model[7:] if model.startswith("models/") else model
    return f"/v1beta/models/{quote(name, safe='-._~')}"


# ---------------------------------------------------------------- embeddings

def embed_request(body: Any, resource: str, options: Any) -> tuple[dict, int, bool]:
    """An OpenAI embeddings body -> (the batchEmbedContents body, how many inputs,
    whether base64 was asked for). `resource` is the model's name there (models/…)."""
    req = embed.read(body)
    texts, dims = req.texts, req.dimensions
    task = (options or {}).get("task_type")
    reqs = []
    for t in texts:
        r: dict[str, Any] = {"model": resource, "content": {"parts": [{"text": t}]}}
        if dims is not None:
            r["outputDimensionality"] = dims
        if task:
            r["taskType"] = task
        reqs.append(r)
    return {"requests": reqs}, len(texts), req.base64


def embeddings(raw: bytes, n: int, model: str, base64_: bool) -> bytes:
    """A BatchEmbedContentsResponse -> OpenAI's embeddings list (ValueError: not one, or
    not `n` vectors)."""
    try:
        resp = _decode(raw)
        vectors = [e["values"] for e in resp["embeddings"]]
    except (msgspec.DecodeError, UnicodeDecodeError, TypeError, KeyError) as exc:
        raise ValueError(f"not a BatchEmbedContentsResponse ({type(exc).__name__})") from None
    if len(vectors) != n or not all(isinstance(v, list) for v in vectors):
        raise ValueError("the backend sent a different number of embeddings than asked")
    return embed.reply(vectors, model, 0, base64_)  # batchEmbedContents counts no tokens


# ---------------------------------------------------------------- model list

def model_names(raw: bytes) -> list[str]:
    """``GET /v1beta/models`` (``{"models": [{"name": "models/…", "supportedGeneration
    Methods"}], "nextPageToken"}``) -> the names that generate or embed content."""
    resp = _decode(raw)
    out = []
    for m in resp.get("models") or []:
        name = m.get("name") if isinstance(m, dict) else None
        methods = m.get("supportedGenerationMethods") or []
        if isinstance(name, str) and (not methods or {"generateContent", "embedContent"}
                                      & set(methods)):
            out.append(name[7:] if name.startswith("models/") else name)
    return out
