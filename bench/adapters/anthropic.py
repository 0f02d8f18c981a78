"""bench/native.py's case for Anthropic's Messages API (its documented stream shape:
message_start, content_block_start, content_block_delta × N, content_block_stop,
message_delta, message_stop)."""

import json


def _ev(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}".encode()


_WORDS = ["Hello", " there", ",", " how", " can", " I", " help", " you", " with", " the",
          " benchmark", " today", "?", " Ask", " me", " anything"]
FRAMES = [
    _ev("message_start", {"type": "message_start", "message": {
        "id": "msg_01", "type": "message", "role": "assistant", "content": [],
        "model": "claude-sonnet-4-5", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    _ev("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "text", "text": ""}}),
    *[_ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": w}}) for w in _WORDS],
    _ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                             "stop_sequence": None},
                          "usage": {"output_tokens": 16}}),
    _ev("message_stop", {"type": "message_stop"}),
]
WHOLE = json.dumps({
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "".join(_WORDS)}], "stop_reason": "end_turn",
    "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 16}}).encode()
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 256,
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}

CASES = [("anthropic", BODY, {}, FRAMES, WHOLE)]
