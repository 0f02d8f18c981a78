"""A fake Hugging Face TGI server's native API, as its OpenAPI document has it
(https://github.com/huggingface/text-generation-inference/blob/main/docs/openapi.json).

- GET /info -> ``Info`` (``model_id`` and the router's limits); GET /health -> 200
- POST /generate ``{"inputs", "parameters"}`` -> ``{"generated_text", "details"}``;
  validation as TGI's: temperature > 0, 0 < top_p < 1, top_k > 0, else 422
  ``{"error", "error_type": "validation"}``
- POST /generate_stream -> always 200 (router/src/server.rs returns the SSE stream
  whatever happens: a validation or overload error is the first event); SSE
  ``data:{…}`` (axum writes no space) token events
  ``{"index", "token": {"id", "text", "logprob", "special"}, "generated_text": null,
  "details": null}``, the last with ``generated_text`` and ``details`` (``finish_reason``,
  ``generated_tokens``, ``input_length``, ``seed``); ``</s>`` as a special last token.
"""

from __future__ import annotations

import json

from aiohttp import web

from tests.fakes.textgen import KNOBS, Knobs, failed, ok, prompt_ok, record, sse

MODEL = "bigscience/bloom-560m"


def _validation(message: str) -> web.Response:
    return web.json_response({"error": f"Input validation error: {message}",
                              "error_type": "validation"}, status=422)


async def info(request: web.Request) -> web.Response:
    return web.json_response({
        "model_id": MODEL, "model_sha": None, "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": 128, "max_best_of": 2, "max_stop_sequences": 4,
        "max_input_tokens": 1024, "max_total_tokens": 2048, "validation_workers": 2,
        "max_client_batch_size": 4, "router": "text-generation-router", "version": "1.3.4",
        "sha": None, "docker_label": None})


async def generate(request: web.Request) -> web.StreamResponse:
    knobs, body = await record(request)
    if (r := failed(knobs)) is not None:
        if request.path == "/generate":
            return r
        # generate_stream answers 200 whatever happens: the error is the first event
        knobs.error_after, error = 0, knobs.fail_body
        return await sse(request, knobs, [b"{}"], error, sep=b"data:")
    prompt = prompt_ok(body.get("inputs"))
    p = body.get("parameters") or {}
    if "temperature" in p and not p["temperature"] > 0:
        return _validation("`temperature` must be strictly positive")
    if "top_p" in p and not 0 < p["top_p"] < 1:
        return _validation("`top_p` must be > 0.0 and < 1.0")
    if "top_k" in p and not p["top_k"] > 0:
        return _validation("`top_k` must be strictly positive")
    words = knobs.words[:p["max_new_tokens"]] if "max_new_tokens" in p else knobs.words
    reason = "length" if len(words) < len(knobs.words) else "eos_token"
    text = "".join(words)
    details = p.get("details", True)
    if request.path == "/generate":
        out: dict = {"generated_text": text}
        if details:
            out["details"] = {"finish_reason": reason, "generated_tokens": len(words),
                              "seed": None, "prefill": [], "tokens": []}
        return web.json_response(out)
    tokens = [(i + 100, w, False) for i, w in enumerate(words)]
    if reason == "eos_token":
        tokens.append((2, "</s>", True))
    events = []
    for i, (tid, t, special) in enumerate(tokens):
        last = i == len(tokens) - 1
        events.append(json.dumps({
            "index": i + 1, "token": {"id": tid, "text": t, "logprob": -0.5, "special": special},
            "top_tokens": None, "generated_text": text if last else None,
            "details": {"finish_reason": reason, "generated_tokens": len(tokens),
                        "input_length": len(prompt.split()), "seed": None}
            if last and details else None}, separators=(",", ":")).encode())
    return await sse(request, knobs, events, json.dumps({
        "error": "Request failed during generation: Server error: CUDA out of memory",
        "error_type": "generation"}, separators=(",", ":")).encode(), sep=b"data:")


def make_app(knobs: Knobs | None = None) -> web.Application:
    app = web.Application()
    app[KNOBS] = knobs or Knobs()
    app.router.add_get("/info", info)
    app.router.add_get("/health", ok)
    app.router.add_post("/generate", generate)
    app.router.add_post("/generate_stream", generate)
    return app
