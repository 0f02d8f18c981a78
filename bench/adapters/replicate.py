"""Replicate predictions: a realistic streamed reply (20 events of the stream URL: 18
output pieces, a logs line, done) and a whole succeeded prediction, for
bench/adapters.py. Shapes: https://replicate.com/docs/topics/predictions/streaming."""

from __future__ import annotations

import json

_PIECES = ["Once", " upon", " a", " time", ",", " a", " small", " robot", " named",
           " Eld", "ric", " routed", " every", " request", " it", " met", ".", "\n"]


def _event(name: str, n: int, data: str) -> bytes:
    lines = "\n".join(f"data: {line}" for line in data.split("\n"))
    return f"event: {name}\nid: 1690212292:{n}\n{lines}".encode()


FRAMES = [
    _event("logs", 0, "Random seed used: `1234`"),
    *[_event("output", i + 1, p) for i, p in enumerate(_PIECES)],
    _event("done", len(_PIECES) + 1, "{}"),
]

WHOLE = json.dumps({
    "id": "gm3qorzdhgbfurvjtvhg6dckhu", "model": "meta/meta-llama-3-8b-instruct",
    "version": "5a6809ca6288247d06daf6365557e5e429063f32a21146b2a807c682652136b8",
    "input": {"prompt": "Tell me a story"}, "logs": "", "output": _PIECES, "error": None,
    "status": "succeeded", "created_at": "2024-05-01T12:00:00.000000Z",
    "metrics": {"predict_time": 0.9, "input_token_count": 12, "output_token_count": 18},
    "urls": {"get": "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu",
             "cancel": "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu/cancel",
             "stream": "https://stream.replicate.com/v1/files/qoxq-example"}}).encode()

BODY = {"model": "meta/meta-llama-3-8b-instruct", "stream": True,
        "messages": [{"role": "user", "content": "Tell me a story"}]}

CASES = [("replicate", BODY, {}, FRAMES, WHOLE)]
