"""Gemini and Vertex translation cases for bench/adapters.py: a realistic 20-event
streamGenerateContent reply (the SSE frames as the framing hands them over: one event's
bytes without its blank line) and a whole generateContent reply, per adapter."""

from __future__ import annotations

import json

_WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog",
          " while", " the", " cat", " watches", " from", " a", " sunny", " window",
          " sill", ".")


def _frame(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode()


def _chunk(text: str, last: bool) -> dict:
    cand: dict = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if last:
        cand["finishReason"] = "STOP"
    usage = {"promptTokenCount": 12, "totalTokenCount": 12}
    if last:
        usage = {"promptTokenCount": 12, "candidatesTokenCount": 19, "totalTokenCount": 31}
    return {"candidates": [cand], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash",
            "responseId": "benchResp0001"}


# 19 text chunks and a function call: 20 events
FRAMES = [_frame(_chunk(w, False)) for w in _WORDS] + [_frame({
    "candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
         "thoughtSignature": "CiQBVthWmZ+benchSignature=="}]},
        "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 25, "totalTokenCount": 37}})]

WHOLE = json.dumps({"candidates": [{"content": {"role": "model", "parts": [
    {"text": "".join(_WORDS)}]}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 19,
                      "totalTokenCount": 31}}).encode()

BODY = {"model": "gemini-2.5-flash", "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": "Tell me about a fox, then the weather."}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "parameters": {
                "type": "object", "properties": {"location": {"type": "string"}}}}}]}

CASES = [
    ("gemini", BODY, {}, FRAMES, WHOLE),
    ("vertex", BODY, {"project": "bench", "location": "us-central1"}, FRAMES, WHOLE),
]
