"""A fake Amazon Bedrock: the runtime's Converse / ConverseStream and the control plane's
ListFoundationModels, as the API reference documents them
(https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
API_runtime_ConverseStream.html, API_ListFoundationModels.html).

Every request's SigV4 signature is recomputed by botocore (tests/fakes/aws_sigv4.py);
the body is checked against Converse's shapes (roles alternating from a user message,
one member per content block, toolResult only in user messages, image bytes base64);
streams are AWS event-stream messages with Bedrock's ``p`` padding field, written cut
across chunk boundaries. What the last user text holds picks the answer: ``tools`` a
tool call, ``throttle`` a 429 ThrottlingException, ``unavailable`` a 503, ``exception``
a throttlingException message mid-stream, ``first-exception`` one as the stream's first
message, ``cut`` a stream closed mid-way, ``crc`` a
message with a broken checksum, ``slow`` a long stream (its cancellation counted).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from eldric.backends import eventstream as es
from tests.fakes import aws_sigv4

REGION = "us-east-1"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"  # an inference profile id
API_KEY = "ABSKbedrock-api-key-example"  # a Bedrock API key (Bearer)
_CORAL = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_BLOCKS = {"text", "image", "document", "video", "audio", "toolUse", "toolResult",
           "guardContent", "cachePoint", "reasoningContent", "citationsContent",
           "searchResult"}
_INFERENCE = {"maxTokens", "temperature", "topP", "stopSequences"}


@dataclass
class Knobs:
    requests: list[dict] = field(default_factory=list)
    cancelled: int = 0
    region: str = REGION
    fail_next: list[int] = field(default_factory=list)  # statuses to answer first
    stream_throttle: int = 0  # streams to open with a throttlingException first


KNOBS = web.AppKey("bedrock_knobs", Knobs)


def aws_error(status: int, error_type: str, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": message}).encode(),
                        content_type="application/json",
                        headers={"x-amzn-ErrorType": f"{error_type}:{_CORAL}",
                                 "x-amzn-RequestId": "fake-request-id"})


def _shape_error(body: Any) -> str | None:
    """What Converse's validation would refuse, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return "messages is required"
    unknown = set(body) - {"messages", "system", "inferenceConfig", "toolConfig",
                           "additionalModelRequestFields", "outputConfig", "guardrailConfig"}
    if unknown:
        return f"unknown fields {sorted(unknown)}"
    role = None
    for i, m in enumerate(body["messages"]):
        if m.get("role") not in ("user", "assistant") or m["role"] == role:
            return f"messages[{i}]: roles must alternate user/assistant"
        if i == 0 and m["role"] != "user":
            return "A conversation must start with a user message."
        role = m["role"]
        if not isinstance(m.get("content"), list) or not m["content"]:
            return f"messages[{i}].content must be a non-empty list"
        for block in m["content"]:
            if len(block) != 1 or next(iter(block)) not in _BLOCKS:
                return f"messages[{i}]: a content block has exactly one member"
            if "toolResult" in block and role != "user":
                return "toolResult blocks belong in user messages"
            if "image" in block:
                img = block["image"]
                if img.get("format") not in ("png", "jpeg", "gif", "webp"):
                    return "image.format"
                try:
                    base64.b64decode(img["source"]["bytes"], validate=True)
                except (KeyError, binascii.Error, TypeError):
                    return "image.source.bytes must be base64"
    if set(body.get("inferenceConfig") or {}) - _INFERENCE:
        return "unknown inferenceConfig fields"
    for s in body.get("system") or []:
        if not isinstance(s.get("text"), str) or not s["text"]:
            return "system blocks need text"
    tc = body.get("toolConfig")
    if tc is not None:
        for t in tc.get("tools") or []:
            spec = t.get("toolSpec") or {}
            if not spec.get("name") or not isinstance((spec.get("inputSchema") or {})
                                                      .get("json"), dict):
                return "toolSpec needs name and inputSchema.json"
    uses = any("toolUse" in b or "toolResult" in b for m in body["messages"]
               for b in m["content"])
    if uses and tc is None:
        return ("The toolConfig field must be defined when using toolUse and toolResult "
                "content blocks.")
    return None


def _last_text(body: dict) -> str:
    for m in reversed(body["messages"]):
        if m["role"] == "user":
            return " ".join(b.get("text", "") for b in m["content"] if "text" in b)
    return ""


def _pad(obj: dict, n: int) -> bytes:
    return json.dumps({**obj, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"[:n]},
                      separators=(",", ":")).encode()


USAGE = {"inputTokens": 12, "outputTokens": 7, "totalTokens": 19}


def text_events(words: list[str], stop: str = "end_turn") -> list[bytes]:
    out = [es.event("messageStart", _pad({"role": "assistant"}, 4))]
    for i, w in enumerate(words):
        out.append(es.event("contentBlockDelta", _pad(
            {"contentBlockIndex": 0, "delta": {"text": w}}, 3 + i % 20)))
    out += [es.event("contentBlockStop", _pad({"contentBlockIndex": 0}, 9)),
            es.event("messageStop", _pad({"stopReason": stop}, 11)),
            es.event("metadata", _pad({"usage": USAGE, "metrics": {"latencyMs": 321}}, 2))]
    return out


def tool_events() -> list[bytes]:
    return [es.event("messageStart", _pad({"role": "assistant"}, 4)),
            es.event("contentBlockDelta", _pad(
                {"contentBlockIndex": 0, "delta": {"text": "Let me check."}}, 5)),
            es.event("contentBlockStop", _pad({"contentBlockIndex": 0}, 6)),
            es.event("contentBlockStart", _pad({"contentBlockIndex": 1, "start": {
                "toolUse": {"toolUseId": "tooluse_abc123", "name": "get_weather"}}}, 7)),
            es.event("contentBlockDelta", _pad({"contentBlockIndex": 1, "delta": {
                "toolUse": {"input": "{\"city\": \"Pa"}}}, 8)),
            es.event("contentBlockDelta", _pad({"contentBlockIndex": 1, "delta": {
                "toolUse": {"input": "ris\"}"}}}, 9)),
            es.event("contentBlockStop", _pad({"contentBlockIndex": 1}, 10)),
            es.event("messageStop", _pad({"stopReason": "tool_use"}, 11)),
            es.event("metadata", _pad({"usage": USAGE, "metrics": {"latencyMs": 100}}, 2))]


def whole(text: str | None, calls: bool = False) -> dict:
    content: list[dict] = [{"text": text}] if text else []
    if calls:
        content.append({"toolUse": {"toolUseId": "tooluse_abc123", "name": "get_weather",
                                    "input": {"city": "Paris"}}})
    return {"output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "tool_use" if calls else "end_turn", "usage": USAGE,
            "metrics": {"latencyMs": 250}}


async def _signed(request: web.Request) -> tuple[bytes, web.Response | None]:
    body = await request.read()
    who, denied = aws_sigv4.check(request, body, "bedrock", request.app[KNOBS].region)
    if denied is None and who.startswith("bearer:") and who != f"bearer:{API_KEY}":
        denied = aws_sigv4.denied("Invalid API Key format", "UnrecognizedClientException")
    return body, denied


async def converse(request: web.Request) -> web.StreamResponse:
    knobs = request.app[KNOBS]
    raw, denied = await _signed(request)
    if denied is not None:
        return denied
    stream = request.match_info["op"] == "converse-stream"
    model = request.match_info["model"]
    body = json.loads(raw)
    knobs.requests.append({"model": model, "body": body, "stream": stream,
                           "headers": dict(request.headers), "raw_path": request.raw_path})
    if knobs.fail_next:
        status = knobs.fail_next.pop(0)
        return aws_error(status, "ThrottlingException" if status == 429
                         else "ServiceUnavailableException", "failing as told")
    if model not in (MODEL, PROFILE):
        return aws_error(404, "ResourceNotFoundException", "Model not found")
    why = _shape_error(body)
    if why:
        return aws_error(400, "ValidationException", why)
    said = _last_text(body)
    if "throttle" in said:
        return aws_error(429, "ThrottlingException",
                         "Too many requests, please wait before trying again.")
    if "unavailable" in said:
        return aws_error(503, "ServiceUnavailableException", "Bedrock is unable to process "
                         "your request.")
    calls = "tools" in said and "toolConfig" in body
    if not stream:
        text = "Let me check." if calls else "Hello from Bedrock."
        return web.json_response(whole(text, calls))
    if calls:
        frames = tool_events()
    elif "slow" in said:
        frames = text_events([f"w{i} " for i in range(200)])
    else:
        frames = text_events(["Hello", " from", " Bedrock", "."])
    if "first-exception" in said or knobs.stream_throttle:
        # ConverseStream's 200 whose first message is the exception (throttled once the
        # stream was open)
        knobs.stream_throttle = max(0, knobs.stream_throttle - 1)
        frames = [es.exception("throttlingException", json.dumps(
            {"message": "Too many tokens, please wait before trying again."}).encode())]
    elif "exception" in said:
        frames = frames[:3] + [es.exception("throttlingException", json.dumps(
            {"message": "Too many tokens, please wait before trying again."}).encode())]
    if "crc" in said:
        frames[3] = frames[3][:-1] + bytes([frames[3][-1] ^ 0xFF])
    if "cut" in said:
        frames = frames[:3] + [frames[3][:10]]  # half a message, then the connection goes
    writes = [part for f in frames for part in (f[:7], f[7:])]  # cut as a network would

    def cancelled() -> None:
        knobs.cancelled += 1
    return await aws_sigv4.stream_reply(request, {"x-amzn-RequestId": "fake-request-id"},
                                        writes, cancelled, cut="cut" in said,
                                        delay=0.05 if "slow" in said else 0.0)


async def foundation_models(request: web.Request) -> web.Response:
    _, denied = await _signed(request)
    if denied is not None:
        return denied
    summaries = [
        {"modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL}", "modelId": MODEL,
         "modelName": "Claude 3 Haiku", "providerName": "Anthropic",
         "inputModalities": ["TEXT", "IMAGE"], "outputModalities": ["TEXT"],
         "responseStreamingSupported": True, "customizationsSupported": [],
         "inferenceTypesSupported": ["ON_DEMAND"], "modelLifecycle": {"status": "ACTIVE"}},
        {"modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL}:48k",
         "modelId": f"{MODEL}:48k", "modelName": "Claude 3 Haiku", "providerName": "Anthropic",
         "inputModalities": ["TEXT", "IMAGE"], "outputModalities": ["TEXT"],
         "responseStreamingSupported": True, "customizationsSupported": [],
         "inferenceTypesSupported": ["PROVISIONED"], "modelLifecycle": {"status": "ACTIVE"}},
        {"modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/amazon.titan-embed-text-v2:0",
         "modelId": "amazon.titan-embed-text-v2:0", "modelName": "Titan Text Embeddings V2",
         "providerName": "Amazon", "inputModalities": ["TEXT"],
         "outputModalities": ["EMBEDDING"], "responseStreamingSupported": False,
         "customizationsSupported": [], "inferenceTypesSupported": ["ON_DEMAND"],
         "modelLifecycle": {"status": "ACTIVE"}}]
    if request.query.get("byOutputModality") == "TEXT":
        summaries = [s for s in summaries if "TEXT" in s["outputModalities"]]
    return web.json_response({"modelSummaries": summaries})


def make_app(region: str = REGION) -> web.Application:
    app = web.Application()
    app[KNOBS] = Knobs(region=region)
    app.router.add_post("/model/{model}/{op:converse|converse-stream}", converse)
    app.router.add_get("/foundation-models", foundation_models)
    return app
