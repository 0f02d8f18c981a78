"""A fake Cohere v2 API, following the real one's documented shapes.

- ``POST /v2/chat`` (https://docs.cohere.com/reference/chat): ``Authorization: Bearer
  KEY`` (else 401 ``{"message"}``), ``model`` and ``messages`` required, every top-level
  field one the API knows (an OpenAI-only field such as ``top_p`` or ``stop`` is a 400, as
  a translation that leaked one would be), every message of a known role (a tool message
  needs ``tool_call_id``). Whole replies ``{id, finish_reason, message, usage}``; with
  ``"stream": true`` the events of /docs/streaming and /docs/tool-use-streaming framed as
  the API sends them (``event: <type>`` then ``data: {…}``, a blank line after each).
- ``POST /v2/embed``: ``model``, ``input_type`` and ``texts`` required; ``{id,
  embeddings: {float: [[…]]}, texts, meta: {billed_units: {input_tokens}}}``.
- ``POST /v2/rerank``: ``model``, ``query``, ``documents`` (strings) required; results
  ordered by a word-overlap score, ``top_n`` kept.
- ``GET /v1/models``: ``{models: [{name, endpoints}], next_page_token}``.

The scenario is ``Knobs.scenario`` if set, else the last user message's text when it
names one: ``text``, ``tools``, ``error_midstream`` (a message-end with finish_reason
ERROR), ``error_first`` (the same before any content), ``ratelimited`` (429), ``overloaded`` (503), ``invalid`` (400), ``cut`` (the connection closes after
three events), ``slow`` (an event every 50 ms for 10 s: for a client that leaves; the
fake notes it in ``Knobs.left``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.recorded import bearer_ok, recorded

API_KEY = "co-test-key"
CHAT_MODEL = "command-a-03-2025"
MODELS = [{"name": CHAT_MODEL, "endpoints": ["generate", "chat", "summarize"]},
          {"name": "embed-v4.0", "endpoints": ["embed", "embed_image"]},
          {"name": "rerank-v3.5", "endpoints": ["rerank"]}]

CHAT_FIELDS = {"model", "messages", "tools", "strict_tools", "documents", "citation_options",
               "response_format", "safety_mode", "max_tokens", "stop_sequences",
               "temperature", "seed", "frequency_penalty", "presence_penalty", "k", "p",
               "logprobs", "tool_choice", "thinking", "priority", "stream"}
ROLES = {"system", "user", "assistant", "tool"}


def _event(obj: dict) -> bytes:
    return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()


def stream_events(texts: list[str], *, usage: tuple[int, int] = (12, 8),
                  tool_plan: str | None = None,
                  calls: list[tuple[str, str, list[str]]] = (),  # type: ignore[assignment]
                  finish: str = "COMPLETE", error: str | None = None,
                  citation: bool = False) -> list[bytes]:
    """One /v2/chat stream as the docs show it, each event with its blank line."""
    out = [_event({"id": f"{uuid.uuid4()}", "type": "message-start", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
        "citations": []}}})]
    if tool_plan:
        for word in tool_plan.split(" "):
            piece = word if word == tool_plan.split(" ")[0] else " " + word
            out.append(_event({"type": "tool-plan-delta",
                               "delta": {"message": {"tool_plan": piece}}}))
    for i, (call_id, name, args) in enumerate(calls):
        out.append(_event({"type": "tool-call-start", "index": i, "delta": {"message": {
            "tool_calls": {"id": call_id, "type": "function",
                           "function": {"name": name, "arguments": ""}}}}}))
        for piece in args:
            out.append(_event({"type": "tool-call-delta", "index": i, "delta": {"message": {
                "tool_calls": {"function": {"arguments": piece}}}}}))
        out.append(_event({"type": "tool-call-end", "index": i}))
    if texts:
        out.append(_event({"type": "content-start", "index": 0, "delta": {"message": {
            "content": {"type": "text", "text": ""}}}}))
        for t in texts:
            out.append(_event({"type": "content-delta", "index": 0, "delta": {"message": {
                "content": {"text": t}}}, "logprobs": None}))
        if citation:
            out.append(_event({"type": "citation-start", "index": 0, "delta": {"message": {
                "citations": {"start": 0, "end": 3, "text": texts[0], "sources": [],
                              "type": "TEXT_CONTENT"}}}}))
            out.append(_event({"type": "citation-end", "index": 0}))
        out.append(_event({"type": "content-end", "index": 0}))
    end: dict[str, Any] = {"finish_reason": finish, "usage": {
        "billed_units": {"input_tokens": usage[0], "output_tokens": usage[1]},
        "tokens": {"input_tokens": usage[0], "output_tokens": usage[1]}}}
    if error:
        end["error"] = error
    out.append(_event({"type": "message-end", "delta": end}))
    return out


# The scenarios' streams and whole replies (the weather example of the tool-use guide).
STREAMS = {
    "text": stream_events(["Hello", "! How", " can I help?"], citation=True),
    "tools": stream_events([], tool_plan="I will look up the weather in Toronto.",
                           calls=[("get_weather_9b1k", "get_weather",
                                   ['{"loc', 'ation": "Tor', 'onto"}'])], finish="TOOL_CALL"),
    "error_midstream": stream_events(["Hel"], finish="ERROR", error="internal model failure"),
    # message-start, then message-end with ERROR: it failed before saying anything
    "error_first": stream_events([], finish="ERROR", error="internal model failure"),
    "cut": stream_events(["one", " two", " three", " four"]),
    "slow": stream_events(["tick"] * 200),
}
WHOLE = {
    "text": {"finish_reason": "COMPLETE", "message": {
        "role": "assistant", "content": [{"type": "text", "text": "Hello! How can I help?"}]}},
    "tools": {"finish_reason": "TOOL_CALL", "message": {
        "role": "assistant", "tool_plan": "I will look up the weather in Toronto.",
        "tool_calls": [{"id": "get_weather_9b1k", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"location\": \"Toronto\"}"}}]}},
}
HTTP_ERRORS = {"ratelimited": (429, "You are using a Trial key, which is limited to 10 API "
                               "calls / minute."),
               "overloaded": (503, "service unavailable"),
               "invalid": (400, "invalid request: message must be at least 1 token long or "
                           "tool results must be specified.")}


class Knobs:
    def __init__(self) -> None:
        self.api_key = API_KEY
        self.scenario: str | None = None
        self.requests: list[dict] = []  # path, headers, body of each request
        # a Retry-After on the 429 (Cohere documents none; a gateway in front may add it)
        self.retry_after: str | None = None
        self.left = asyncio.Event()  # a client left a `slow` stream


KNOBS = web.AppKey("knobs", Knobs)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"id": str(uuid.uuid4()), "message": message}, status=status)


async def _record(request: web.Request) -> tuple[Knobs, Any, web.Response | None]:
    knobs = request.app[KNOBS]
    body = await recorded(request, knobs.requests)
    if not bearer_ok(request, knobs.api_key):
        return knobs, body, error(401, "invalid api token")
    if request.method == "POST" and not isinstance(body, dict):
        return knobs, body, error(400, "invalid request: body must be a JSON object")
    return knobs, body, None


def _scenario(knobs: Knobs, body: dict) -> str:
    if knobs.scenario:
        return knobs.scenario
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            name = content.strip() if isinstance(content, str) else ""
            return name if name in STREAMS or name in HTTP_ERRORS else "text"
    return "text"


def _check_chat(body: dict) -> str | None:
    for field in ("model", "messages"):
        if field not in body:
            return f"invalid request: {field} must be specified"
    unknown = set(body) - CHAT_FIELDS
    if unknown:
        return f"invalid request: unknown field(s) {sorted(unknown)}"
    for m in body["messages"]:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return "invalid request: each message needs a role of system, user, assistant, tool"
        if m["role"] == "tool" and not m.get("tool_call_id"):
            return "invalid request: a tool message needs tool_call_id"
    if body.get("tool_choice") not in (None, "REQUIRED", "NONE"):
        return "invalid request: tool_choice must be REQUIRED or NONE"
    return None


async def chat(request: web.Request) -> web.StreamResponse:
    knobs, body, denied = await _record(request)
    if denied is not None:
        return denied
    if (problem := _check_chat(body)) is not None:
        return error(400, problem)
    scenario = _scenario(knobs, body)
    if scenario in HTTP_ERRORS:
        resp = error(*HTTP_ERRORS[scenario])
        if knobs.retry_after and resp.status == 429:
            resp.headers["Retry-After"] = knobs.retry_after
        return resp
    if not body.get("stream"):
        reply = WHOLE.get(scenario, WHOLE["text"])
        return web.json_response({"id": str(uuid.uuid4()), **reply, "usage": {
            "billed_units": {"input_tokens": 12, "output_tokens": 8},
            "tokens": {"input_tokens": 12, "output_tokens": 8}}})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    try:
        for i, event in enumerate(STREAMS[scenario]):
            if scenario == "cut" and i == 3:
                request.transport.close()
                return resp
            if scenario == "slow":
                await asyncio.sleep(0.05)
            await resp.write(event)
    except (ConnectionResetError, asyncio.CancelledError):
        knobs.left.set()
        raise
    await resp.write_eof()
    return resp


async def embed(request: web.Request) -> web.Response:
    knobs, body, denied = await _record(request)
    if denied is not None:
        return denied
    for field in ("model", "input_type", "texts"):
        if field not in body:
            return error(400, f"invalid request: {field} must be specified")
    texts = body["texts"]
    dims = body.get("output_dimension") or 4
    vectors = [[round((len(t) + j) / 10, 2) for j in range(dims)] for t in texts]
    return web.json_response({
        "id": str(uuid.uuid4()), "embeddings": {"float": vectors}, "texts": texts,
        "meta": {"api_version": {"version": "2"},
                 "billed_units": {"input_tokens": sum(len(t.split()) for t in texts)}},
        "response_type": "embeddings_by_type"})


async def rerank(request: web.Request) -> web.Response:
    knobs, body, denied = await _record(request)
    if denied is not None:
        return denied
    for field in ("model", "query", "documents"):
        if field not in body:
            return error(400, f"invalid request: {field} must be specified")
    if not all(isinstance(d, str) for d in body["documents"]):
        return error(400, "invalid request: documents must be strings")
    words = set(body["query"].lower().split())
    scores = [len(words & set(d.lower().split())) / (len(words) or 1) for d in body["documents"]]
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:body.get("top_n") or None]
    return web.json_response({
        "id": str(uuid.uuid4()),
        "results": [{"index": i, "relevance_score": round(scores[i], 4)} for i in order],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}})


async def models(request: web.Request) -> web.Response:
    knobs, body, denied = await _record(request)
    if denied is not None:
        return denied
    return web.json_response({"models": MODELS, "next_page_token": None})


def make_app() -> web.Application:
    app = web.Application()
    app[KNOBS] = Knobs()
    app.router.add_post("/v2/chat", chat)
    app.router.add_post("/v2/embed", embed)
    app.router.add_post("/v2/rerank", rerank)
    app.router.add_get("/v1/models", models)
    return app
