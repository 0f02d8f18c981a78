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


def _claude_frames() -> list[bytes]:
    """Claude on Vertex streams Anthropic's Messages events: start, 17 text deltas, the
    message delta and stop (20 events)."""
    def ev(name: str, obj: dict) -> bytes:
        return f"event: {name}\ndata: ".encode() + json.dumps(obj, separators=(",", ":")).encode()
    out = [ev("message_start", {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "content": [],
        "model": "claude-sonnet-4-5", "stop_reason": None,
        "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}})]
    out += [ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": w}})
            for w in _WORDS[:15]]
    out += [ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                 "usage": {"output_tokens": 15}}),
            ev("message_stop", {"type": "message_stop"})]
    return out


CLAUDE_WHOLE = json.dumps({"id": "msg_bench", "type": "message", "role": "assistant",
                           "model": "claude-sonnet-4-5", "stop_reason": "end_turn",
                           "content": [{"type": "text", "text": "".join(_WORDS)}],
                           "usage": {"input_tokens": 12, "output_tokens": 15}}).encode()

CASES.append(("vertex", {**BODY, "model": "claude-sonnet-4-5@20250929"},
              {"project": "bench", "location": "us-east5"}, _claude_frames(), CLAUDE_WHOLE))
