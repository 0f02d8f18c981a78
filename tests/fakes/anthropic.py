"""A fake Anthropic Messages API, following the real one's shapes.

- ``POST /v1/messages``: ``x-api-key`` must match ``Knobs.api_key`` (else 401
  authentication_error), ``anthropic-version`` is required, and so are ``model``,
  ``max_tokens`` and ``messages`` (else 400 invalid_request_error). Replies are
  ``{"type": "message", ...}`` objects, or with ``"stream": true`` the SSE transcripts
  below replayed byte for byte (the event flow of docs/build-with-claude/streaming).
- ``POST /v1/messages/count_tokens``: the same checks (``model`` and ``messages``
  required), ``{"input_tokens": N}`` (here one per word of the messages' text, plus 3).
- ``GET /v1/models``: the paginated model list (``data``, ``has_more``, ``first_id``,
  ``last_id``), key-checked too.
- Errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}``.

The scenario is ``Knobs.scenario`` if set, else the last user message's text when it names
one (``"text"``, ``"tools"``, ``"error_midstream"``, ``"overloaded"``), else ``"text"``.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tests.fakes.body import json_body

API_KEY = "sk-ant-test-key"
MODEL = "claude-sonnet-4-5-20250929"
MODELS = [
    {"type": "model", "id": MODEL, "display_name": "Claude Sonnet 4.5",
     "created_at": "2025-09-29T00:00:00Z"},
    {"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5",
     "created_at": "2025-10-01T00:00:00Z"},
]


def _sse(events: list[tuple[str, str]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {data}\n\n".encode() for name, data in events)


# A plain text reply, as in the streaming guide's "Basic streaming request".
TEXT_SSE = _sse([
    ("message_start", '{"type": "message_start", "message": {"id": "msg_01TextReply", '
     '"type": "message", "role": "assistant", "content": [], "model": "' + MODEL + '", '
     '"stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, '
     '"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}'),
    ("content_block_start",
     '{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}'),
    ("ping", '{"type": "ping"}'),
    ("content_block_delta", '{"type": "content_block_delta", "index": 0, '
     '"delta": {"type": "text_delta", "text": "Hello"}}'),
    ("content_block_delta", '{"type": "content_block_delta", "index": 0, '
     '"delta": {"type": "text_delta", "text": "! How can I help?"}}'),
    ("content_block_stop", '{"type": "content_block_stop", "index": 0}'),
    ("message_delta", '{"type": "message_delta", "delta": {"stop_reason": "end_turn", '
     '"stop_sequence": null}, "usage": {"output_tokens": 15}}'),
    ("message_stop", '{"type": "message_stop"}'),
])

# Text, then TWO parallel tool_use blocks (content indexes 1 and 2) whose input JSON arrives
# split mid-key and mid-value, as in the guide's "Streaming request with tool use".
TOOLS_SSE = _sse([
    ("message_start", '{"type":"message_start","message":{"id":"msg_01ToolReply",'
     '"type":"message","role":"assistant","model":"' + MODEL + '","content":[],'
     '"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,'
     '"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}}'),
    ("content_block_start",
     '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'),
    ("ping", '{"type": "ping"}'),
    ("content_block_delta", '{"type":"content_block_delta","index":0,'
     '"delta":{"type":"text_delta","text":"Checking both cities."}}'),
    ("content_block_stop", '{"type":"content_block_stop","index":0}'),
    ("content_block_start", '{"type":"content_block_start","index":1,"content_block":'
     '{"type":"tool_use","id":"toolu_01SanFrancisco","name":"get_weather","input":{}}}'),
    ("content_block_delta", '{"type":"content_block_delta","index":1,'
     '"delta":{"type":"input_json_delta","partial_json":""}}'),
    ("content_block_delta", '{"type":"content_block_delta","index":1,'
     '"delta":{"type":"input_json_delta","partial_json":"{\\"loca"}}'),
    ("content_block_delta", '{"type":"content_block_delta","index":1,'
     '"delta":{"type":"input_json_delta","partial_json":"tion\\": \\"San Fra"}}'),
    ("content_block_delta", '{"type":"content_block_delta","index":1,'
     '"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\\", \\"unit\\": \\"fah"}}'),
    ("content_block_delta", '{"type":"content_block_delta","index":1,'
     '"delta":{"type":"input_json_delta","partial_json":"renheit\\"}"}}'),
    ("content_block_stop", '{"type":"content_block_stop","index":1}'),
    ("content_block_start", '{"type":"content_block_start","index":2,"content_block":'
     '{"type":"tool_use","id":"toolu_02Paris","name":"get_weather","input":{}}}'),
    ("content_block_delta", '{"type":"content_block_delta","index":2,'
     '"delta":{"type":"input_json_delta","partial_json":"{\\"location\\": \\"Par"}}'),
    ("content_block_delta", '{"type":"content_block_delta","index":2,'
     '"delta":{"type":"input_json_delta","partial_json":"is\\"}"}}'),
    ("content_block_stop", '{"type":"content_block_stop","index":2}'),
    ("message_delta", '{"type":"message_delta","delta":{"stop_reason":"tool_use",'
     '"stop_sequence":null},"usage":{"output_tokens":89}}'),
    ("message_stop", '{"type":"message_stop"}'),
])

# A stream that fails after it started: the guide's example error event.
ERROR_MIDSTREAM_SSE = _sse([
    ("message_start", '{"type": "message_start", "message": {"id": "msg_01Broken", '
     '"type": "message", "role": "assistant", "content": [], "model": "' + MODEL + '", '
     '"stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, '
     '"output_tokens": 1}}}'),
    ("content_block_start",
     '{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}'),
    ("content_block_delta", '{"type": "content_block_delta", "index": 0, '
     '"delta": {"type": "text_delta", "text": "Par"}}'),
    ("error", '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'),
])

TRANSCRIPTS = {"text": TEXT_SSE, "tools": TOOLS_SSE, "error_midstream": ERROR_MIDSTREAM_SSE}

# The same replies, non-streaming.
MESSAGES = {
    "text": {"id": "msg_01TextReply", "type": "message", "role": "assistant", "model": MODEL,
             "content": [{"type": "text", "text": "Hello! How can I help?"}],
             "stop_reason": "end_turn", "stop_sequence": None,
             "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0,
                       "cache_read_input_tokens": 0, "output_tokens": 15}},
    "tools": {"id": "msg_01ToolReply", "type": "message", "role": "assistant", "model": MODEL,
              "content": [
                  {"type": "text", "text": "Checking both cities."},
                  {"type": "tool_use", "id": "toolu_01SanFrancisco", "name": "get_weather",
                   "input": {"location": "San Francisco, CA", "unit": "fahrenheit"}},
                  {"type": "tool_use", "id": "toolu_02Paris", "name": "get_weather",
                   "input": {"location": "Paris"}}],
              "stop_reason": "tool_use", "stop_sequence": None,
              "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0, "output_tokens": 89}},
}

# HTTP errors, by scenario: (status, error type, message).
HTTP_ERRORS = {
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "error_midstream": (500, "api_error", "Internal server error"),
}


class Knobs:
    def __init__(self) -> None:
        self.api_key = API_KEY
        self.scenario: str | None = None  # force a scenario, whatever the messages say
        self.die_after: int | None = None  # close the connection after N streamed events
        self.requests: list[dict] = []  # path, headers, body (decoded JSON) of each request


KNOBS = web.AppKey("knobs", Knobs)


def error(status: int, type_: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": type_, "message": message},
                              "request_id": f"req_{uuid.uuid4().hex[:24]}"}, status=status,
                             headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"})


async def _record(request: web.Request) -> tuple[Knobs, Any]:
    """The request kept in Knobs.requests (its body decoded, None when not JSON)."""
    knobs = request.app[KNOBS]
    body = await json_body(request)
    knobs.requests.append({"path": request.path, "headers": dict(request.headers),
                           "body": body})
    return knobs, body


def _auth(request: web.Request) -> web.Response | None:
    if request.headers.get("x-api-key") != request.app[KNOBS].api_key:
        return error(401, "authentication_error", "invalid x-api-key")
    if "anthropic-version" not in request.headers:
        return error(400, "invalid_request_error", "anthropic-version: header is required")
    return None


def _scenario(knobs: Knobs, body: dict) -> str:
    if knobs.scenario:
        return knobs.scenario
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(b.get("text", "") for b in content
                                   if isinstance(b, dict) and b.get("type") == "text")
            name = content.strip() if isinstance(content, str) else ""
            return name if name in TRANSCRIPTS or name in HTTP_ERRORS else "text"
    return "text"


_MEDIA = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _bad_image(body: dict) -> str | None:
    """An image block's source as the Messages API checks it (docs/build-with-claude/
    vision): base64 with one of its four media types and data, or a url; the error names
    the field as the API does (``messages.0.content.1.image.source…``)."""
    for i, m in enumerate(body.get("messages") or ()):
        content = m.get("content") if isinstance(m, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(block, dict) or block.get("type") != "image":
                continue
            where = f"messages.{i}.content.{j}.image.source"
            src = block.get("source") or {}
            if src.get("type") == "base64":
                if src.get("media_type") not in _MEDIA:
                    return (f"{where}.base64.media_type: Input should be 'image/jpeg', "
                            "'image/png', 'image/gif' or 'image/webp'")
                if not isinstance(src.get("data"), str) or not src["data"]:
                    return f"{where}.base64.data: Field required"
            elif src.get("type") == "url":
                if not isinstance(src.get("url"), str):
                    return f"{where}.url.url: Field required"
            else:
                return f"{where}: Input tag {src.get('type')!r} found using 'type' does not match"
    return None


async def messages(request: web.Request) -> web.StreamResponse:
    knobs, body = await _record(request)
    if (denied := _auth(request)) is not None:
        return denied
    if not isinstance(body, dict):
        return error(400, "invalid_request_error", "There was an issue with the format of "
                     "your request: the request body is not valid JSON")
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            return error(400, "invalid_request_error", f"{field}: Field required")
    if (bad := _bad_image(body)) is not None:
        return error(400, "invalid_request_error", bad)
    scenario = _scenario(knobs, body)
    if scenario == "garbled":  # a broken proxy in between: 200, and not a message at all
        return web.Response(body=b"<html>upstream gateway</html>", content_type="text/html")
    if scenario in HTTP_ERRORS and (scenario == "overloaded" or not body.get("stream")):
        return error(*HTTP_ERRORS[scenario])
    if not body.get("stream"):
        return web.json_response({**MESSAGES[scenario], "model": body["model"]})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                       "Cache-Control": "no-cache",
                                       "request-id": f"req_{uuid.uuid4().hex[:24]}"})
    await resp.prepare(request)
    for i, event in enumerate(TRANSCRIPTS[scenario].split(b"\n\n")[:-1]):
        if i == knobs.die_after:
            request.transport.close()  # the connection breaks mid-stream
            return resp
        await resp.write(event + b"\n\n")
    await resp.write_eof()
    return resp


async def count_tokens(request: web.Request) -> web.Response:
    knobs, body = await _record(request)
    if (denied := _auth(request)) is not None:
        return denied
    if not isinstance(body, dict) or "model" not in body or "messages" not in body:
        return error(400, "invalid_request_error", "model and messages: Field required")
    words = 0
    for m in body["messages"]:
        content = m.get("content") if isinstance(m, dict) else None
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        words += sum(len(b.get("text", "").split()) for b in blocks or ()
                     if isinstance(b, dict))
    return web.json_response({"input_tokens": words + 3})


async def models(request: web.Request) -> web.Response:
    if (denied := _auth(request)) is not None:
        return denied
    return web.json_response({"data": MODELS, "has_more": False,
                              "first_id": MODELS[0]["id"], "last_id": MODELS[-1]["id"]})


def make_app() -> web.Application:
    app = web.Application()
    app[KNOBS] = Knobs()
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", models)
    return app
