"""Cohere v2 chat: a realistic streamed reply (20 events: message-start, a content block
of 16 deltas with a citation, message-end) and a whole reply, for bench/adapters.py.
Shapes: https://docs.cohere.com/docs/streaming."""

from __future__ import annotations

import json


def _event(obj: dict) -> bytes:
    # One SSE event as the framing hands it to feed(): its lines, no blank line after.
    return f"event: {obj['type']}\ndata: {json.dumps(obj, separators=(',', ':'))}".encode()


_WORDS = ["A", " large", " language", " model", " (LLM)", " is", " a", " type", " of",
          " neural", " network", " trained", " on", " vast", " text", "."]

FRAMES = [
    _event({"id": "29f14a5a-11de-4cae-9800-25e4747408ea", "type": "message-start",
            "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "",
                                  "tool_calls": [], "citations": []}}}),
    _event({"type": "content-start", "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
    *[_event({"type": "content-delta", "index": 0,
              "delta": {"message": {"content": {"text": w}}}}) for w in _WORDS[:-1]],
    _event({"type": "citation-start", "index": 0, "delta": {"message": {"citations": {
        "start": 2, "end": 25, "text": "large language model", "sources": [],
        "type": "TEXT_CONTENT"}}}}),
    _event({"type": "content-end", "index": 0}),
    _event({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
        "billed_units": {"input_tokens": 5, "output_tokens": 16},
        "tokens": {"input_tokens": 71, "output_tokens": 16}}}}),
]

WHOLE = json.dumps({
    "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4", "finish_reason": "COMPLETE",
    "message": {"role": "assistant", "content": [{"type": "text", "text": "".join(_WORDS)}]},
    "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 16},
              "tokens": {"input_tokens": 71, "output_tokens": 16}}}).encode()

BODY = {"model": "command-a-03-2025", "stream": True,
        "messages": [{"role": "user", "content": "What is an LLM?"}]}

CASES = [("cohere", BODY, {}, FRAMES, WHOLE)]
