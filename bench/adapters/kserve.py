"""Translation-cost cases for the text-generation adapters (KServe/Triton v2 generate,
TGI's native generate, the template): realistic 20-event native streams as each server
sends them (docs in eldric/wire/native/{kserve,tgi,template}.py), and a whole reply.
Read by bench/adapters.py, which times each egress's feed() per event."""

from __future__ import annotations

import json

_BODY = {"model": "llama", "stream": True, "max_tokens": 64,
         "messages": [{"role": "system", "content": "You are a helpful assistant."},
                      {"role": "user", "content": "Why is the sky blue? Answer briefly."}]}
_WORDS = ["Sun", "light", " is", " scattered", " by", " the", " molecules", " of", " the",
          " air", ",", " and", " blue", " light", " is", " scattered", " the", " most",
          " of", " all."]
_TEXT = "".join(_WORDS)


def _compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


_VLLM = {"inputs": {"return_finish_reason": True, "return_num_input_tokens": True,
                    "return_num_output_tokens": True}}
_KSERVE_STREAM = [b"data: " + _compact({
    "model_name": "llama", "model_version": "1", "text_output": w,
    "finish_reason": ["stop" if i == len(_WORDS) - 1 else ""], "num_input_tokens": 18,
    "num_output_tokens": [1]}) for i, w in enumerate(_WORDS)]
_KSERVE_WHOLE = _compact({"model_name": "llama", "model_version": "1", "text_output": _TEXT,
                          "finish_reason": ["stop"], "num_input_tokens": 18,
                          "num_output_tokens": [20]})

_TGI_STREAM = [b"data:" + _compact({
    "index": i + 1, "token": {"id": 1000 + i, "text": w, "logprob": -0.4, "special": False},
    "top_tokens": None, "generated_text": _TEXT if i == len(_WORDS) - 1 else None,
    "details": {"finish_reason": "eos_token", "generated_tokens": 20, "input_length": 18,
                "seed": None} if i == len(_WORDS) - 1 else None})
    for i, w in enumerate(_WORDS)]
_TGI_WHOLE = _compact({"generated_text": _TEXT, "details": {
    "finish_reason": "eos_token", "generated_tokens": 20, "seed": None, "prefill": [],
    "tokens": []}})

_TEMPLATE = {"path": "/generate", "request": {"prompt": "{{prompt}}",
                                              "max_new_tokens": "{{max_tokens}}"},
             "response": "generated_text",
             "stream": {"path": "/generate_stream", "framing": "sse", "text": "token",
                        "end": "[DONE]"}}
_TEMPLATE_STREAM = [b"data: " + _compact({"token": w}) for w in _WORDS[:19]] + [b"data: [DONE]"]
_TEMPLATE_WHOLE = _compact({"generated_text": _TEXT})

CASES = [
    ("kserve", _BODY, _VLLM, _KSERVE_STREAM, _KSERVE_WHOLE),
    ("tgi-native", _BODY, {}, _TGI_STREAM, _TGI_WHOLE),
    ("template", _BODY, _TEMPLATE, _TEMPLATE_STREAM, _TEMPLATE_WHOLE),
]
