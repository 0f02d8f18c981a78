"""A fake Gemini API (generateContent), following the real one's shapes.

- ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``:
  ``x-goog-api-key`` must be ``Knobs.api_key`` (none: 403 PERMISSION_DENIED "unregistered
  callers"; a wrong one: 400 INVALID_ARGUMENT with reason API_KEY_INVALID, as the API
  answers). The body is checked as the API's strict proto-JSON parser does: an unknown
  field is a 400 ``Invalid JSON payload received. Unknown name "…"``; ``contents`` must be
  ``{role: user|model, parts: [one of text, inlineData {mimeType, data}, fileData
  {fileUri}, functionCall, functionResponse]}``; a functionResponse must answer a
  functionCall of the model turn before it by name; inlineData must be base64; the
  first call of a model turn must carry the thoughtSignature the fake gave it.
  Replies are GenerateContentResponse objects; the stream is one ``data: {…}`` event per
  chunk, CRLF-framed (``\\r\\n\\r\\n``, which SSE allows and Google's SDK readers take),
  no end marker, the last chunk carrying finishReason and the full usageMetadata.
- ``POST /v1beta/models/{model}:batchEmbedContents``: ``{"requests": [{model, content}]}``
  (each request's model must be the path's) -> ``{"embeddings": [{"values"}]}``.
- ``GET /v1beta/models``: ``{"models": [{name, supportedGenerationMethods, …}]}``.
- Errors: google.rpc.Status JSON ``{"error": {"code", "message", "status", "details"}}``.

The scenario is ``Knobs.scenario`` if set, else the last user text when it names one
(``text``, ``tools``, ``thinking``, ``blocked``, ``cut``, ``slow``, ``error_midstream``,
``error_first`` (200, then an error as the stream's first event), ``quota``, ``overloaded``), else ``text`` (or ``tools`` when tools were offered and the
last turn is not a function's answer). The generate handlers are shared by the fake
Vertex AI (tests/fakes/vertex.py), which mounts them under its own paths and auth.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes.body import json_body

API_KEY = "AIzaSyFakeGeminiKey0000000000000000000"
MODEL = "gemini-2.5-flash"
MODELS = [
    {"name": "models/gemini-2.5-flash", "version": "001", "displayName": "Gemini 2.5 Flash",
     "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
     "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent"]},
    {"name": "models/gemini-2.5-pro", "version": "2.5", "displayName": "Gemini 2.5 Pro",
     "supportedGenerationMethods": ["generateContent", "countTokens"]},
    {"name": "models/text-embedding-004", "version": "004", "displayName": "Text Embedding 004",
     "supportedGenerationMethods": ["embedContent"]},
]

_REQUEST_FIELDS = {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig",
                   "safetySettings", "cachedContent", "labels"}
_GENERATION_FIELDS = {"maxOutputTokens", "temperature", "topP", "topK", "stopSequences",
                      "seed", "presencePenalty", "frequencyPenalty", "responseMimeType",
                      "responseSchema", "responseJsonSchema", "candidateCount",
                      "thinkingConfig", "responseLogprobs", "logprobs"}
_PART_FIELDS = {"text", "inlineData", "fileData", "functionCall", "functionResponse",
                "thought", "thoughtSignature"}

SIGNATURE = "CiQBVthWmZ+fakeSignature=="

# Chunks of a streamed text reply (what the final whole reply concatenates).
TEXT_CHUNKS = ["The capital", " of France", " is Paris."]
USAGE = {"promptTokenCount": 8, "candidatesTokenCount": 7, "totalTokenCount": 15,
         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]}
CALLS = [{"name": "get_weather", "args": {"location": "Paris"}},
         {"name": "get_weather", "args": {"location": "Tokyo"}}]


class Knobs:
    def __init__(self) -> None:
        self.api_key = API_KEY
        self.scenario: str | None = None
        self.requests: list[dict] = []  # path, query, headers, body of each request
        self.cancelled = 0  # streams whose client went away before the end
        self.streaming = asyncio.Event()  # a slow stream has begun


KNOBS = web.AppKey("gemini_knobs", Knobs)


def status(code: int, name: str, message: str, reason: str | None = None) -> dict:
    err: dict[str, Any] = {"code": code, "message": message, "status": name}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                           "domain": "googleapis.com",
                           "metadata": {"service": "generativelanguage.googleapis.com"}}]
    return {"error": err}


def fail(code: int, name: str, message: str, reason: str | None = None) -> web.Response:
    body = status(code, name, message, reason)
    if name == "RESOURCE_EXHAUSTED":
        # the real quota error: QuotaFailure and RetryInfo details, no Retry-After header
        body["error"]["details"] = [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaValue": "10"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "18.3s"}]
    return web.json_response(body, status=code)


def invalid(message: str) -> web.Response:
    return fail(400, "INVALID_ARGUMENT", message)


def check_request(body: Any) -> str | None:
    """What the real API would refuse in a GenerateContentRequest, else None."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received."
    unknown = set(body) - _REQUEST_FIELDS
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": Cannot find field.'
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    called: list[str] = []
    for i, c in enumerate(contents):
        if not isinstance(c, dict) or c.get("role") not in ("user", "model"):
            return f"Please use a valid role: user, model. (contents[{i}])"
        parts = c.get("parts")
        if not isinstance(parts, list) or not parts:
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
        names = []
        for j, p in enumerate(parts):
            if not isinstance(p, dict) or not p or set(p) - _PART_FIELDS:
                return f"Invalid JSON payload received. contents[{i}].parts[{j}]"
            if "inlineData" in p:
                d = p["inlineData"]
                if not d.get("mimeType") or not isinstance(d.get("data"), str):
                    return f"contents[{i}].parts[{j}].inlineData needs mimeType and data"
                try:
                    base64.b64decode(d["data"], validate=True)
                except (binascii.Error, ValueError):
                    return f"Invalid value at 'contents[{i}].parts[{j}].inline_data.data' (TYPE_BYTES)"
            if "fileData" in p and not p["fileData"].get("fileUri"):
                return f"contents[{i}].parts[{j}].fileData.fileUri is required"
            if "functionCall" in p:
                names.append(p["functionCall"].get("name"))
            if "functionResponse" in p:
                fr = p["functionResponse"]
                if not isinstance(fr.get("response"), dict) or fr.get("name") not in called:
                    return ("Please ensure that function response turn comes immediately after "
                            "a function call turn.")
        if c["role"] == "model":
            # Gemini 3 checks the first call of a model turn carries the signature it was
            # sent with (https://ai.google.dev/gemini-api/docs/thought-signatures)
            first = next((p for p in parts if "functionCall" in p), None)
            if first is not None and first["functionCall"] == CALLS[0] \
                    and first.get("thoughtSignature") != SIGNATURE:
                return ("Function call is missing a thought_signature in functionCall "
                        f"parts (contents[{i}]).")
        called = names if c["role"] == "model" else []
    gen = body.get("generationConfig", {})
    if not isinstance(gen, dict) or set(gen) - _GENERATION_FIELDS:
        return 'Invalid JSON payload received. Unknown name in "generationConfig".'
    for t in body.get("tools") or []:
        for d in t.get("functionDeclarations") or []:
            if "parameters" in d and "parametersJsonSchema" in d:
                return "parameters and parametersJsonSchema are mutually exclusive"
    return None


def _scenario(knobs: Knobs, body: dict) -> str:
    if knobs.scenario:
        return knobs.scenario
    last = body["contents"][-1]
    texts = [p["text"].strip() for p in last["parts"] if "text" in p]
    if texts and texts[-1] in SCENARIOS:
        return texts[-1]
    answered = any("functionResponse" in p for p in last["parts"])
    return "tools" if body.get("tools") and not answered else "text"


def _candidate(parts: list[dict], reason: str | None = None) -> dict:
    c: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if reason:
        c["finishReason"] = reason
    return c


def chunks(scenario: str, model: str) -> list[dict]:
    """The GenerateContentResponse chunks of a scenario's stream."""
    meta = {"modelVersion": model, "responseId": "fakeResp0001"}
    if scenario == "tools":
        return [{"candidates": [_candidate([
            {"functionCall": CALLS[0], "thoughtSignature": SIGNATURE},
            {"functionCall": CALLS[1]}], "STOP")],
            "usageMetadata": {**USAGE, "candidatesTokenCount": 20, "totalTokenCount": 28}, **meta}]
    if scenario == "blocked":
        return [{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}, **meta}]
    out = []
    if scenario == "thinking":
        out.append({"candidates": [_candidate([{"text": "Recalling capitals.", "thought": True}])],
                    "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}, **meta})
    for i, text in enumerate(TEXT_CHUNKS):
        last = i == len(TEXT_CHUNKS) - 1
        usage = dict(USAGE) if last else {"promptTokenCount": 8, "totalTokenCount": 8}
        if last and scenario == "thinking":
            usage["thoughtsTokenCount"] = 4
        out.append({"candidates": [_candidate([{"text": text}], "STOP" if last else None)],
                    "usageMetadata": usage, **meta})
    return out


def whole(scenario: str, model: str) -> dict:
    """A scenario's whole reply: its chunks' parts in one candidate."""
    parts: list[dict] = []
    reply: dict = {}
    for c in chunks(scenario, model):
        reply = {**c}
        for cand in c.get("candidates") or []:
            for p in cand["content"]["parts"]:
                if "text" in p and parts and "text" in parts[-1] \
                        and bool(p.get("thought")) == bool(parts[-1].get("thought")):
                    parts[-1] = {**parts[-1], "text": parts[-1]["text"] + p["text"]}
                else:
                    parts.append(dict(p))
    if reply.get("candidates"):
        reply["candidates"] = [_candidate(parts, reply["candidates"][0].get("finishReason"))]
    return reply


def sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\r\n\r\n"


HTTP_ERRORS = {
    "quota": (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your "
              "plan and billing details."),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "bad": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
}
SCENARIOS = {"text", "tools", "thinking", "blocked", "cut", "slow", "error_midstream",
             "error_first",
             *HTTP_ERRORS}


async def record(request: web.Request) -> tuple[Knobs, Any]:
    knobs = request.app[KNOBS]
    body = await json_body(request)
    knobs.requests.append({"path": request.path, "query": request.query_string,
                           "headers": dict(request.headers), "body": body})
    return knobs, body


def key_check(request: web.Request) -> web.Response | None:
    key = request.headers.get("x-goog-api-key")
    if key is None:
        return fail(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers "
                    "(callers without established identity). Please use API Key or other form "
                    "of API consumer identity to call this API.")
    if key != request.app[KNOBS].api_key:
        return fail(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                    "API_KEY_INVALID")
    return None


async def generate(request: web.Request, model: str, method: str, knobs: Knobs,
                   body: Any) -> web.StreamResponse:
    """generateContent / streamGenerateContent of `model` (auth already checked)."""
    if method not in ("generateContent", "streamGenerateContent"):
        return fail(404, "NOT_FOUND", f"Method {method} not found")
    if (problem := check_request(body)) is not None:
        return invalid(problem)
    scenario = _scenario(knobs, body)
    if scenario in HTTP_ERRORS:
        return fail(*HTTP_ERRORS[scenario])
    if method == "generateContent":
        return web.json_response(whole(scenario, model))
    if request.query.get("alt") != "sse":
        # without alt=sse the API streams one JSON array; eldric always asks for SSE
        return invalid("the fake only streams with alt=sse")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Content-Disposition": "attachment"})
    await resp.prepare(request)
    events = chunks("text" if scenario in ("cut", "slow", "error_midstream", "error_first")
                    else scenario, model)
    try:
        if scenario == "cut":  # the connection dies after the first chunk
            await resp.write(sse(events[0]))
            request.transport.close()
            return resp
        if scenario == "error_first":  # 200, then the stream's only event is an error
            await resp.write(sse(status(503, "UNAVAILABLE", "The model is overloaded.")))
            await resp.write_eof()
            return resp
        if scenario == "error_midstream":
            await resp.write(sse(events[0]))
            await resp.write(sse(status(503, "UNAVAILABLE", "The model is overloaded.")))
            await resp.write_eof()
            return resp
        for i, e in enumerate(events):
            await resp.write(sse(e))
            if scenario == "slow":
                knobs.streaming.set()
                await asyncio.sleep(0.5 if i == 0 else 30)
        await resp.write_eof()
    except (asyncio.CancelledError, ConnectionResetError):
        knobs.cancelled += 1
        raise
    return resp


def embed(model: str, body: Any) -> web.Response:
    if not isinstance(body, dict) or set(body) != {"requests"} or not body["requests"]:
        return invalid('Invalid JSON payload received. "requests" is required.')
    out = []
    for i, r in enumerate(body["requests"]):
        if r.get("model") != f"models/{model}":
            return invalid(f"requests[{i}]: model must be the batch's, models/{model}")
        texts = [p.get("text", "") for p in r.get("content", {}).get("parts", [])]
        if not texts:
            return invalid(f"requests[{i}].content.parts must not be empty")
        dims = r.get("outputDimensionality") or 4
        seed = sum(map(ord, "".join(texts)))
        out.append({"values": [round(((seed * (k + 1)) % 97) / 97, 4) for k in range(dims)]})
    return web.json_response({"embeddings": out})


def split(tail: str) -> tuple[str, str]:
    model, _, method = tail.rpartition(":")
    return model, method


async def models_handler(request: web.Request) -> web.Response:
    await record(request)
    if (denied := key_check(request)) is not None:
        return denied
    return web.json_response({"models": MODELS})


async def model_handler(request: web.Request) -> web.StreamResponse:
    knobs, body = await record(request)
    if (denied := key_check(request)) is not None:
        return denied
    model, method = split(request.match_info["tail"])
    if method == "batchEmbedContents":
        return embed(model, body)
    return await generate(request, model, method, knobs, body)


def app(knobs: Knobs | None = None,
        extra: Callable[[web.Application], None] | None = None) -> web.Application:
    a = web.Application()
    a[KNOBS] = knobs or Knobs()
    a.router.add_get("/v1beta/models", models_handler)
    a.router.add_post("/v1beta/models/{tail}", model_handler)
    if extra is not None:
        extra(a)
    return a
