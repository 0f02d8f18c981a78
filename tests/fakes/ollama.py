"""A fake Ollama: its native API (/api/tags, /api/chat, /api/generate, /api/show,
/api/embed, /api/embeddings, /api/ps, /api/version) plus its OpenAI-compatible
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
"""

from __future__ import annotations

import json
import secrets
import time

from aiohttp import web

TAGS = ["llama3.2:3b", "nomic-embed-text:latest"]
VERSION = "0.12.3"
PULLED = web.AppKey("pulled", list)  # the models this Ollama has (TAGS unless told)
SENT = web.AppKey("sent", list)  # the bytes of each /v1/messages reply body, in order
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


async def tags(request: web.Request) -> web.Response:
    return web.json_response({"models": [
        {"name": t, "model": t, "modified_at": "2026-10-01T12:00:00.000000Z", "size": 2019393189,
         "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
         "details": DETAILS} for t in request.app[PULLED]]})


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


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if body.get("model") not in request.app[PULLED]:
        return web.json_response({"error": {
            "message": f'model "{body.get("model")}" not found, try pulling it first',
            "type": "not_found_error", "param": None, "code": None}}, status=404)
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


def _go(obj: object) -> bytes:
    """JSON as Go's encoding/json writes it (compact)."""
    return json.dumps(obj, separators=(",", ":")).encode()


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


async def native_pull(request: web.Request) -> web.Response:
    return web.json_response({"error": "pull model manifest: file does not exist"}, status=500)


def make_app(models: list[str] | None = None) -> web.Application:
    app = web.Application()
    app[PULLED] = list(TAGS if models is None else models)
    app[SENT] = []
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/ps", ps)
    app.router.add_post("/api/chat", native_chat)
    app.router.add_post("/api/generate", native_generate)
    app.router.add_post("/api/show", show)
    app.router.add_post("/api/embed", embed)
    app.router.add_post("/api/embeddings", embeddings)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/api/pull", native_pull)
    return app
