"""Bedrock's ConverseStream for bench/adapters.py: a realistic 20-event stream (messageStart,
16 text deltas, contentBlockStop, messageStop, metadata; Bedrock's ``p`` padding on each),
as the call feeds it: AWS event-stream messages cut into frames by eldric's decoder
(eldric/backends/eventstream.py), so the figure is the translation's, per event."""

from __future__ import annotations

import json

from eldric.backends import eventstream as es

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
BODY = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Name the planets."}]}
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"


def _ev(kind: str, obj: dict, n: int) -> bytes:
    return es.event(kind, json.dumps({**obj, "p": _PAD[:n]}, separators=(",", ":")).encode())


WORDS = ["Mercury", ",", " Venus", ",", " Earth", ",", " Mars", ",", " Jupiter", ",",
         " Saturn", ",", " Uranus", ",", " Neptune", "."]
WIRE = [_ev("messageStart", {"role": "assistant"}, 5),
        *(_ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}, 3 + i)
          for i, w in enumerate(WORDS)),
        _ev("contentBlockStop", {"contentBlockIndex": 0}, 7),
        _ev("messageStop", {"stopReason": "end_turn"}, 9),
        _ev("metadata", {"usage": {"inputTokens": 18, "outputTokens": 16, "totalTokens": 34},
                         "metrics": {"latencyMs": 412}}, 2)]
FRAMES = es.Frames().feed(b"".join(WIRE))
WHOLE = json.dumps({"output": {"message": {"role": "assistant", "content": [
    {"text": "".join(WORDS)}]}}, "stopReason": "end_turn",
    "usage": {"inputTokens": 18, "outputTokens": 16, "totalTokens": 34},
    "metrics": {"latencyMs": 412}}).encode()

CASES = [("bedrock", BODY, {"region": "us-east-1"}, FRAMES, WHOLE)]
