"""SageMaker's InvokeEndpointWithResponseStream for bench/adapters.py: 20 PayloadPart
events each, their bytes a TGI container's ``data:`` token stream (``sagemaker``) or an
LMI container's chat chunk lines (``sagemaker-lmi``), cut at arbitrary places as
SageMaker does, in the frames eldric's event-stream decoder gives the egress."""

from __future__ import annotations

import json

from eldric.backends import eventstream as es

WORDS = ["Mercury", ",", " Venus", ",", " Earth", ",", " Mars", ",", " Jupiter", ",",
         " Saturn", ",", " Uranus", ",", " Neptune", ".", " Pluto", " is", " not", "."]
BODY = {"model": "endpoint", "stream": True,
        "messages": [{"role": "user", "content": "Name the planets."}]}


def _parts(payload: bytes, n: int = 20) -> list[bytes]:
    step = -(-len(payload) // n)
    wire = b"".join(es.event("PayloadPart", payload[i:i + step], "application/octet-stream")
                    for i in range(0, len(payload), step))
    return es.Frames().feed(wire)


_TGI = b"".join(b"data:" + json.dumps({
    "index": i + 1, "token": {"id": 100 + i, "text": w, "logprob": -0.2, "special": False},
    "generated_text": None if i < len(WORDS) - 1 else "".join(WORDS),
    "details": None if i < len(WORDS) - 1 else {"finish_reason": "eos_token",
                                                "generated_tokens": len(WORDS),
                                                "seed": None, "input_length": 9}}
    ).encode() + b"\n\n" for i, w in enumerate(WORDS))
_LMI = b"".join(json.dumps({
    "id": "chatcmpl-0", "object": "chat.completion.chunk", "created": 1712792433,
    "choices": [{"index": 0, "delta": {"content": w}, "logprobs": None,
                 "finish_reason": "eos_token" if i == len(WORDS) - 1 else None}]}
    ).encode() + b"\n" for i, w in enumerate(WORDS))

CASES = [
    ("sagemaker", BODY, {}, _parts(_TGI), json.dumps([{
        "generated_text": "".join(WORDS), "details": {"finish_reason": "eos_token",
                                                      "generated_tokens": 20}}]).encode()),
    ("sagemaker-lmi", BODY, {}, _parts(_LMI), json.dumps({
        "id": "chatcmpl-0", "object": "chat.completion", "created": 1711997860,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(WORDS)},
                     "finish_reason": "eos_token"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}}).encode()),
]
