"""A fake Ollama: its native API (/api/tags, /api/chat, /api/generate, /api/show,
/api/embed, /api/embeddings, /api/ps, /api/version; its model management, /api/pull,
/api/create, /api/blobs, /api/delete, in tests.fakes.ollama_models) plus its OpenAI-compatible
/v1/chat/completions and its Anthropic-compatible /v1/messages (Ollama >= 0.14).

Shapes follow Ollama's docs/api.md and server/routes.go: native replies stream by
default as NDJSON (`application/x-ndjson`, one object a line), `{"stream": false}` gives
one JSON object; the last line carries `done`, `done_reason` and the metrics in ns; an
unknown model is a 404 `{"error": "model '<name>' not found"}`; an empty chat or prompt
loads the model. /v1 answers as OpenAI does (system_fingerprint "fp_ollama").

/v1/messages follows ollama/ollama's middleware/anthropic.go and anthropic/anthropic.go:
no key or anthropic-version checked; model, a positive max_tokens and messages required
(400); errors `{"type": "error", "error": {"type", "message"}, "request_id"}` with the
type by status (an unknown model is the chat handler's 404, not_found_error); Go's
compact JSON, a whole reply ending in a newline (json.Encoder); a stream of
`event: …\ndata: …` events made per chat chunk (StreamConverter: no ping, message_start's
input_tokens the request's len/4 estimate, the final counts in message_delta).

/v1/responses follows ollama/ollama's middleware/openai.go (ResponsesMiddleware) and
openai/responses.go (Ollama >= 0.13.3), for text: `input` a string or message items
(`role` alone makes one; content a string or input_text/output_text parts), turned into
chat messages (instructions first, as a system message) and recorded in GOT; ids
`resp_<n>`/`msg_<n>`; nothing stored (`store: false`, `previous_response_id: null`); a
whole reply is ToResponse's struct as json.Encoder writes it, a stream is the
ResponsesStreamConverter's `event: …\ndata: …` events of json.Marshal'ed maps (keys
sorted), each with its `sequence_number`, from a chat stream of WORDS. Errors are the
OpenAI shape of openai.NewError. Other item types (function calls, reasoning) are not
faked: a 400.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

from aiohttp import web

TAGS = ["llama3.2:3b", "nomic-embed-text:latest"]
VERSION = "0.12.3"
PULLED = web.AppKey("pulled", list)  # the models this Ollama has (TAGS unless told)
SENT = web.AppKey("sent", list)  # each /v1/messages and /v1/responses reply body, in order
IMAGES = web.AppKey("images", list)  # the image bytes /v1/chat/completions took, in order
GOT = web.AppKey("got", list)  # the chat messages each /v1/responses request became
WORDS = ["Hello", " there", "!"]
DETAILS = {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
           "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}
# docs/api.md's metrics of a finished reply
METRICS = {"total_duration": 4883583458, "load_duration": 1334875, "prompt_eval_count": 26,
           "prompt_eval_duration": 342546000, "eval_count": 3, "eval_duration": 4535599000}


def created_at() -> str:
    secs, ns = divmod(time.time_ns(), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns:09d}Z"


def _missing(model: object) -> web.Response:
    return web.json_response({"error": f"model '{model}' not found"}, status=404)


async def _known(request: web.Request) -> tuple[dict, web.Response | None]:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return {}, web.json_response({"error": "invalid character"}, status=400)
    if not body.get("model"):
        return body, web.json_response({"error": "model is required"}, status=400)
    if body["model"] not in request.app[PULLED]:
        return body, _missing(body["model"])
    return body, None


async def _native(request: web.Request, text_of) -> web.StreamResponse:  # type: ignore[no-untyped-def]
    """/api/chat and /api/generate: `text_of(piece)` is the line's text field."""
    body, refused = await _known(request)
    if refused is not None:
        return refused
    model = body["model"]
    empty = not body.get("messages") and not body.get("prompt")
    if empty:  # load (keep_alive 0: unload); always one JSON object
        reason = "unload" if body.get("keep_alive") == 0 else "load"
        return web.json_response({"model": model, "created_at": created_at(),
                                  **text_of(""), "done": True, "done_reason": reason})
    last = {"model": model, "created_at": created_at(), **text_of(""), "done": True,
            "done_reason": "stop", **METRICS}
    if "prompt" in body:
        last["context"] = [1, 2, 3]
    if body.get("stream") is False:
        return web.json_response(last | text_of("".join(WORDS)))
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for piece in WORDS:
        await resp.write(json.dumps({"model": model, "created_at": created_at(),
                                     **text_of(piece), "done": False}).encode() + b"\n")
    await resp.write(json.dumps(last).encode() + b"\n")
    return resp


async def native_chat(request: web.Request) -> web.StreamResponse:
    return await _native(request, lambda t: {"message": {"role": "assistant", "content": t}})


async def native_generate(request: web.Request) -> web.StreamResponse:
    return await _native(request, lambda t: {"response": t})


async def show(request: web.Request) -> web.Response:
    body, refused = await _known(request)
    if refused is not None:
        return refused
    return web.json_response({  # docs/api.md "Show Model Information", shortened
        "modelfile": "# Modelfile generated by \"ollama show\"\nFROM llama3.2\n",
        "parameters": "num_keep                       24",
        "template": "{{ .Prompt }}", "details": DETAILS,
        "model_info": {"general.architecture": "llama", "general.parameter_count": 3212749888,
                       "llama.context_length": 131072},
        "capabilities": ["completion", "tools"],
        "modified_at": "2026-10-01T12:00:00.000000Z"})


def _vector(text: str) -> list[float]:
    return [round((len(text) % 7) / 10 + i / 100, 4) for i in range(4)]


async def embed(request: web.Request) -> web.Response:
    body, refused = await _known(request)
    if refused is not None:
        return refused
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs or []
    return web.json_response({"model": body["model"], "embeddings": [_vector(t) for t in inputs],
                              "total_duration": 14143917, "load_duration": 1019500,
                              "prompt_eval_count": 8})


async def embeddings(request: web.Request) -> web.Response:
    body, refused = await _known(request)
    if refused is not None:
        return refused
    return web.json_response({"embedding": _vector(body.get("prompt") or "")})


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": VERSION})


async def ps(request: web.Request) -> web.Response:
    return web.json_response({"models": []})


def _openai_error(status: int, message: str) -> web.Response:
    """openai.NewError's shape, the type by status."""
    etype = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return web.json_response({"error": {"message": message, "type": etype, "param": None,
                                        "code": None}}, status=status)


def _openai_missing(model: object) -> web.Response:
    return _openai_error(404, f'model "{model}" not found, try pulling it first')


_IMAGE_PREFIXES = tuple(f"data:image/{t};base64," for t in ("jpeg", "jpg", "png", "webp")) + (
    "data:;base64,",)


def _image(part: dict) -> bytes | str:
    """An image_url part as ollama/openai/openai.go's decodeImageURL takes it: its bytes,
    or the error message FromChatRequest answers 400 with."""
    iu = part.get("image_url")
    url = iu.get("url") if isinstance(iu, dict) else iu
    if not isinstance(url, str):
        return "invalid message format"
    if url.startswith(("http://", "https://")):
        return "image URLs are not currently supported, please use base64 encoded data instead"
    prefix = next((p for p in _IMAGE_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        return "invalid image input"
    try:
        return base64.b64decode(url[len(prefix):], validate=True)
    except ValueError:
        return "invalid image input"


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    for m in body.get("messages") or ():
        for part in m.get("content") if isinstance(m.get("content"), list) else ():
            if part.get("type") == "image_url":
                got = _image(part)
                if isinstance(got, str):
                    return _openai_error(400, got)
                request.app[IMAGES].append(got)
    if body.get("model") not in request.app[PULLED]:
        return _openai_missing(body.get("model"))
    created = int(time.time())
    if not body.get("stream"):
        return web.json_response({
            "id": "chatcmpl-42", "object": "chat.completion", "created": created,
            "model": body["model"], "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 26, "completion_tokens": 4, "total_tokens": 30}})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i, piece in enumerate(WORDS):
        await resp.write(("data: " + json.dumps({
            "id": "chatcmpl-42", "object": "chat.completion.chunk", "created": created,
            "model": body["model"], "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece},
                         "finish_reason": None}]}) + "\n\n").encode())
    await resp.write(("data: " + json.dumps({
        "id": "chatcmpl-42", "object": "chat.completion.chunk", "created": created,
        "model": body["model"], "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                     "finish_reason": "stop"}]}) + "\n\n").encode())
    await resp.write(b"data: [DONE]\n\n")
    return resp


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029"}


def _go(obj: object, sort_keys: bool = False) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, HTML characters escaped, a
    float with no fraction without its ".0", a map's keys sorted (`sort_keys`; a struct
    keeps its fields' order)."""
    def integral(o: object) -> object:
        if isinstance(o, float) and o.is_integer():
            return int(o)
        if isinstance(o, dict):
            return {k: integral(v) for k, v in o.items()}
        if isinstance(o, list):
            return [integral(v) for v in o]
        return o
    text = json.dumps(integral(obj), separators=(",", ":"), ensure_ascii=False,
                      sort_keys=sort_keys)
    return "".join(_GO_ESCAPES.get(c, c) for c in text).encode()


def _anthropic_error(status: int, message: str) -> web.Response:
    etype = {400: "invalid_request_error", 401: "authentication_error",
             403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
             503: "overloaded_error", 529: "overloaded_error"}.get(status, "api_error")
    return web.Response(status=status, content_type="application/json", body=_go({
        "type": "error", "error": {"type": etype, "message": message},
        "request_id": f"req_{secrets.token_hex(12)}"}) + b"\n")


def _estimate(body: dict) -> int:
    """anthropic.EstimateInputTokens for text: the system's and each message's role and
    text length, over 4 (at least 1)."""
    def text(content: object) -> int:
        if isinstance(content, str):
            return len(content)
        return sum(len(b.get("text") or "") for b in content or () if isinstance(b, dict))
    total = text(body.get("system")) + sum(len(m.get("role", "")) + text(m.get("content"))
                                           for m in body["messages"])
    return max(total // 4, 1)


async def messages(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        return _anthropic_error(400, str(exc))
    for refused, message in ((not body.get("model"), "model is required"),
                             (not isinstance(body.get("max_tokens"), int)
                              or body["max_tokens"] <= 0,
                              "max_tokens is required and must be positive"),
                             (not body.get("messages"), "messages is required")):
        if refused:
            return _anthropic_error(400, message)
    model = body["model"]
    if model not in request.app[PULLED]:
        return _anthropic_error(404, f"model '{model}' not found")
    mid = f"msg_{secrets.token_hex(12)}"
    usage = {"input_tokens": METRICS["prompt_eval_count"],
             "output_tokens": METRICS["eval_count"]}
    sent = request.app[SENT]
    if not body.get("stream"):
        sent.append(_go({"id": mid, "type": "message", "role": "assistant", "model": model,
                         "content": [{"type": "text", "text": "".join(WORDS)}],
                         "stop_reason": "end_turn", "usage": usage}) + b"\n")
        return web.Response(body=sent[-1], content_type="application/json")
    events = [("message_start", {"type": "message_start", "message": {
        "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
        "usage": {"input_tokens": _estimate(body), "output_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": w}})
               for w in WORDS]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": "end_turn"}, "usage": usage}),
               ("message_stop", {"type": "message_stop"})]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    out = b""
    for name, data in events:
        event = b"event: " + name.encode() + b"\ndata: " + _go(data) + b"\n\n"
        out += event
        await resp.write(event)
    sent.append(out)
    return resp


def _input_messages(body: dict) -> list[dict]:
    """FromResponsesRequest's chat messages for text input; ValueError as Ollama words it."""
    got = [{"role": "system", "content": body["instructions"]}] if body.get("instructions") \
        else []
    value = body.get("input")
    if isinstance(value, str):
        return got + ([{"role": "user", "content": value}] if value else [])
    if not isinstance(value, list):
        raise ValueError("input must be a string or array")
    for i, item in enumerate(value):
        kind = item.get("type") or ("message" if item.get("role") else "")
        if kind != "message":
            raise ValueError(f"input[{i}]: " + (f"unknown input item type: {kind!r}" if kind
                             else "input item missing required 'type' field"))
        content = item.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") not in ("input_text", "output_text"):
                    raise ValueError(f"input[{i}]: unknown content type: {part.get('type')}")
            content = "".join(part.get("text", "") for part in content)
        got.append({"role": item.get("role", ""), "content": content or ""})
    return got


def _echo(body: dict, sort_keys: bool) -> dict:
    """The request's fields a reply echoes (ToResponse / buildResponseObject)."""
    fmt = (body.get("text") or {}).get("format") or {"type": "text"}
    text = {"type": fmt.get("type", "")} | {k: fmt[k] for k in ("name", "schema", "strict")
                                             if fmt.get(k) not in (None, "")}
    reasoning = {k: body.get("reasoning", {}).get(k) or None for k in ("effort", "summary")}
    if not any(reasoning.values()):
        reasoning = None
    elif not sort_keys:  # the struct's fields are omitempty
        reasoning = {k: v for k, v in reasoning.items() if v is not None}
    return {"instructions": body.get("instructions") or None,
            "tools": [{"type": t.get("type"), "name": t.get("name"),
                       "description": t.get("description"), "strict": t.get("strict"),
                       "parameters": t.get("parameters")} for t in body.get("tools") or ()],
            "truncation": body.get("truncation") or "disabled", "text": {"format": text},
            "top_p": body.get("top_p", 1.0), "temperature": body.get("temperature", 1.0),
            "reasoning": reasoning, "max_output_tokens": body.get("max_output_tokens"),
            "background": bool(body.get("background"))}


def _response(body: dict, rid: str, status: str, output: list, usage: dict | None,
              completed_at: int | None, sort_keys: bool) -> dict:
    echo = _echo(body, sort_keys)
    return {"id": rid, "object": "response", "created_at": int(time.time()),
            "completed_at": completed_at, "status": status, "incomplete_details": None,
            "model": body["model"], "previous_response_id": None,
            "instructions": echo["instructions"], "output": output, "error": None,
            "tools": echo["tools"], "tool_choice": "auto", "truncation": echo["truncation"],
            "parallel_tool_calls": True, "text": echo["text"], "top_p": echo["top_p"],
            "presence_penalty": 0, "frequency_penalty": 0, "top_logprobs": 0,
            "temperature": echo["temperature"], "reasoning": echo["reasoning"],
            "usage": usage, "max_output_tokens": echo["max_output_tokens"],
            "max_tool_calls": None, "store": False, "background": echo["background"],
            "service_tier": "default", "metadata": {}, "safety_identifier": None,
            "prompt_cache_key": None}


async def responses(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("json: cannot unmarshal into Go value of type ResponsesRequest")
        messages = _input_messages(body)
    except ValueError as exc:  # json.JSONDecodeError too
        return _openai_error(400, str(exc))
    if not body.get("model"):
        return _openai_error(400, "model is required")
    if body["model"] not in request.app[PULLED]:
        return _openai_missing(body["model"])
    request.app[GOT].append(messages)
    rid, mid = f"resp_{secrets.randbelow(999999)}", f"msg_{secrets.randbelow(999999)}"
    text = "".join(WORDS)
    n_in, n_out = METRICS["prompt_eval_count"], METRICS["eval_count"]
    sent = request.app[SENT]
    usage = {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out,
             "input_tokens_details": {"cached_tokens": 0},
             "output_tokens_details": {"reasoning_tokens": 0}}
    if not body.get("stream"):
        message = {"id": mid, "type": "message", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": text, "annotations": [],
                                "logprobs": []}]}
        sent.append(_go(_response(body, rid, "completed", [message], usage,
                                  int(time.time()), False)) + b"\n")
        return web.Response(body=sent[-1], content_type="application/json")
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    done = {**part, "text": text}
    item = {"id": mid, "type": "message", "status": "in_progress", "role": "assistant",
            "content": []}
    at = {"item_id": mid, "output_index": 0, "content_index": 0}
    events = [("response.created", {"response": _response(body, rid, "in_progress", [], None,
                                                          None, True)}),
              ("response.in_progress", {"response": _response(body, rid, "in_progress", [],
                                                              None, None, True)}),
              ("response.output_item.added", {"output_index": 0, "item": item}),
              ("response.content_part.added", {**at, "part": part})]
    events += [("response.output_text.delta", {**at, "delta": w, "logprobs": []})
               for w in WORDS]
    final = {**item, "status": "completed", "content": [done]}
    events += [("response.output_text.done", {**at, "text": text, "logprobs": []}),
               ("response.content_part.done", {**at, "part": done}),
               ("response.output_item.done", {"output_index": 0, "item": final}),
               ("response.completed", {"response": _response(
                   body, rid, "completed", [final], usage, int(time.time()), True)})]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    out = b""
    for seq, (name, data) in enumerate(events):
        data = {**data, "type": name, "sequence_number": seq}
        event = b"event: " + name.encode() + b"\ndata: " + _go(data, sort_keys=True) + b"\n\n"
        out += event
        await resp.write(event)
    sent.append(out)
    return resp


def make_app(models: list[str] | None = None, manage=None) -> web.Application:  # type: ignore[no-untyped-def]
    """`manage`: the model management's state (tests.fakes.ollama_models.Models), for a
    test that steers pulls."""
    from tests.fakes import ollama_models  # it builds on this module

    app = web.Application()
    app[PULLED] = list(TAGS if models is None else models)
    app[SENT] = []
    app[GOT] = []
    app[IMAGES] = []
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/ps", ps)
    app.router.add_post("/api/chat", native_chat)
    app.router.add_post("/api/generate", native_generate)
    app.router.add_post("/api/show", show)
    app.router.add_post("/api/embed", embed)
    app.router.add_post("/api/embeddings", embeddings)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/responses", responses)
    ollama_models.add_routes(app, manage)  # /api/tags, /api/pull, /api/create, …
    return app
