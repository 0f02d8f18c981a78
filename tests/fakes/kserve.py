"""A fake Triton (KServe v2) server with the generate extension, as Triton documents it
(https://github.com/triton-inference-server/server/blob/main/docs/protocol/
extension_generate.md, extension_model_repository.md) with the vLLM backend's extra
outputs (docs/additional_outputs.md of triton-inference-server/vllm_backend).

- POST /v2/repository/index ``{"ready": true}`` -> ``[{"name", "version", "state"}]``
- GET /v2/models (KServe's Python server) -> ``{"models": [...]}``
- GET /v2/health/ready -> 200
- POST /v2/models/{m}[/versions/{v}]/generate -> ``{"model_name", "model_version",
  "text_output"}`` (+ finish_reason / num_*_tokens when the request's
  ``return_finish_reason`` / ``return_num_*_tokens`` inputs ask); parameter values must
  be scalars (400 otherwise); an unknown model is a 400 ``{"error": …}``
- …/generate_stream -> SSE ``data: {…}\\n\\n`` events, one piece of text each; an
  error mid-stream is a ``{"error": …}`` event.
"""

from __future__ import annotations

import json

from aiohttp import web

from tests.fakes.textgen import KNOBS, Knobs, failed, ok, prompt_ok, record, sse


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def index(request: web.Request) -> web.Response:
    knobs, body = await record(request)
    assert body == {"ready": True}, body
    return web.json_response([{"name": m, "version": "1", "state": "READY"}
                              for m in knobs.models] +
                             [{"name": "broken", "version": "1", "state": "UNAVAILABLE",
                               "reason": "unloaded"}])


async def kserve_models(request: web.Request) -> web.Response:
    return web.json_response({"models": request.app[KNOBS].models})


async def generate(request: web.Request) -> web.StreamResponse:
    knobs, body = await record(request)
    if (r := failed(knobs)) is not None:
        return r
    model = request.match_info["model"]
    if model not in knobs.models:
        return _bad(f"Request for unknown model: '{model}' is not found")
    prompt = prompt_ok(body.get("text_input"))
    params = body.get("parameters", {})
    if not isinstance(params, dict) or any(isinstance(v, (list, dict)) for v in params.values()):
        return _bad("parameter values must be strings, numbers or booleans")
    finish = body.get("return_finish_reason") is True
    count_in = body.get("return_num_input_tokens") is True
    count_out = body.get("return_num_output_tokens") is True
    words = knobs.words[:params["max_tokens"]] if "max_tokens" in params else knobs.words
    reason = "length" if len(words) < len(knobs.words) else "stop"
    version = request.match_info.get("version", "1")

    def obj(text: str, n: int | None, last: bool) -> dict:
        out: dict = {"model_name": model, "model_version": version, "text_output": text}
        if finish:
            out["finish_reason"] = [reason if last else ""]
        if count_in:
            out["num_input_tokens"] = len(prompt.split())
        if count_out and n is not None:
            out["num_output_tokens"] = [n]
        return out

    if request.path.endswith("/generate"):
        echo = "" if body.get("exclude_input_in_output") else prompt
        return web.json_response(obj(echo + "".join(words), len(words), True))
    assert params.get("stream") is True, "the vLLM backend streams only with stream: true"
    events = [json.dumps(obj(w, 1, i == len(words) - 1)).encode() for i, w in enumerate(words)]
    return await sse(request, knobs, events,
                     json.dumps({"error": "Error generating stream: CUDA out of memory"}).encode())


def make_app(knobs: Knobs | None = None) -> web.Application:
    app = web.Application()
    app[KNOBS] = knobs or Knobs()
    app.router.add_post("/v2/repository/index", index)
    app.router.add_get("/v2/models", kserve_models)
    app.router.add_get("/v2/health/ready", ok)
    for tail in ("generate", "generate_stream"):
        app.router.add_post(f"/v2/models/{{model}}/{tail}", generate)
        app.router.add_post(f"/v2/models/{{model}}/versions/{{version}}/{tail}", generate)
    return app
