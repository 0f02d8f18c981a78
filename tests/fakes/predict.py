"""Fakes of generic predict servers hosting a text-generation model, each answering as
its documentation shows (the template adapter's worked examples in docs/backends.md):

- TorchServe (https://pytorch.org/serve/inference_api.html): GET /ping ->
  ``{"status": "Healthy"}``; POST /predictions/{model} with token authorization
  (``Authorization: Bearer KEY``); the body is the handler's: this one reads
  ``{"prompt", "max_new_tokens", "temperature"}`` and returns ``{"generated_text"}``;
  an unknown model is 404 ``{"code": 404, "type": "ModelNotFoundException", "message"}``.
- TensorFlow Serving (https://www.tensorflow.org/tfx/serving/api_rest): GET
  /v1/models/{m} -> ``{"model_version_status": [...]}``; POST /v1/models/{m}:predict
  ``{"signature_name", "instances": [...]}`` -> ``{"predictions": [...]}``; errors
  ``{"error": "…"}``.
- MLServer (v2 infer, Hugging Face runtime, text-generation): GET /v2/health/ready; POST
  /v2/models/{m}/infer ``{"inputs": [{"name": "args", "shape": [1], "datatype": "BYTES",
  "data": [...]}]}`` -> ``{"model_name", "id", "outputs": [{"name": "output",
  "datatype": "BYTES", "parameters": {"content_type": "hg_jsonlist"}, "data":
  ["{\\"generated_text\\": \\"<prompt + text>\\"}"]}]}``.
- An Azure ML online endpoint's /score (a model-catalog chat model's scoring script):
  ``Authorization: Bearer KEY``, the deployment in ``azureml-model-deployment``; ``{"input_data": {"input_string": [messages],
  "parameters": {...}}}`` -> ``{"output": "…"}``.
"""

from __future__ import annotations

import json

from aiohttp import web

from tests.fakes.textgen import KNOBS, Knobs, failed, ok, prompt_ok, record, sse

TEXT = "Rayleigh scattering makes it blue."


async def ping(request: web.Request) -> web.Response:
    return web.json_response({"status": "Healthy"})


async def torchserve(request: web.Request) -> web.Response:
    knobs, body = await record(request)
    if (r := failed(knobs)) is not None:
        return r
    model = request.match_info["model"]
    if model not in knobs.models:
        return web.json_response({"code": 404, "type": "ModelNotFoundException",
                                  "message": f"Model not found: {model}"}, status=404)
    prompt_ok(body["prompt"])
    assert isinstance(body.get("max_new_tokens", 1), int)
    return web.json_response({"generated_text": TEXT})


async def tf_status(request: web.Request) -> web.Response:
    return web.json_response({"model_version_status": [{
        "version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})


async def tf_predict(request: web.Request) -> web.Response:
    knobs, body = await record(request)
    if (r := failed(knobs)) is not None:
        return r
    if request.match_info["model"] not in knobs.models:
        return web.json_response({"error": "Servable not found for request: Latest("
                                           f"{request.match_info['model']})"}, status=404)
    assert body["signature_name"] == "serving_default"
    return web.json_response({"predictions": [TEXT for p in body["instances"] if prompt_ok(p)]})


async def mlserver_infer(request: web.Request) -> web.Response:
    knobs, body = await record(request)
    if (r := failed(knobs)) is not None:
        return r
    (inp,) = body["inputs"]
    assert inp["name"] == "args" and inp["datatype"] == "BYTES" and inp["shape"] == [1]
    prompt = prompt_ok(inp["data"][0])
    return web.json_response({
        "model_name": request.match_info["model"] + "_1", "model_version": "1",
        "id": "121ff5f4-1d4a-46d0-9a5e-4cd3b11040df", "parameters": {},
        "outputs": [{"name": "output", "shape": [1, 1], "datatype": "BYTES",
                     "parameters": {"content_type": "hg_jsonlist"},
                     "data": [json.dumps({"generated_text": prompt + " " + TEXT})]}]})


async def azure_score(request: web.Request) -> web.Response:
    knobs, body = await record(request)
    if (r := failed(knobs)) is not None:
        return r
    messages = body["input_data"]["input_string"]
    assert all(set(m) == {"role", "content"} for m in messages) and messages[-1]["role"] == "user"
    assert isinstance(body["input_data"]["parameters"], dict)
    assert request.headers.get("azureml-model-deployment") == "llama-2-7b-chat-1"
    return web.json_response({"output": TEXT})


async def custom(request: web.Request) -> web.StreamResponse:
    """A team's own server (a deployed LCM, say): ``{"text", "max_len"}`` ->
    ``{"output": {"text"}}``; its stream SSE ``data: {"token"}`` events and
    ``data: [DONE]``."""
    knobs, body = await record(request)
    if (r := failed(knobs)) is not None:
        return r
    assert isinstance(body["text"], str) and body["text"]
    if request.path == "/generate":
        return web.json_response({"output": {"text": TEXT}})
    events = [json.dumps({"token": w}).encode() for w in knobs.words] + [b"[DONE]"]
    return await sse(request, knobs, events, b'{"error": "generation failed"}')


def make_app(knobs: Knobs | None = None) -> web.Application:
    app = web.Application()
    app[KNOBS] = knobs or Knobs()
    app.router.add_get("/ping", ping)
    app.router.add_post("/predictions/{model}", torchserve)
    app.router.add_get("/v1/models/{model}", tf_status)
    app.router.add_post("/v1/models/{model}:predict", tf_predict)
    app.router.add_get("/v2/health/ready", ok)
    app.router.add_post("/v2/models/{model}/infer", mlserver_infer)
    app.router.add_post("/score", azure_score)
    app.router.add_post("/generate", custom)
    app.router.add_post("/generate_stream", custom)
    return app
