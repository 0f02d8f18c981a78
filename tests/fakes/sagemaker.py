"""A fake SageMaker runtime: InvokeEndpoint and InvokeEndpointWithResponseStream
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html,
API_runtime_InvokeEndpointWithResponseStream.html) in front of two containers: ``tgi``
(TGI's compat route: ``inputs``/``parameters``, its ``data:`` token stream) and ``lmi``
(DJL LMI's chat schema, ``chat.completion.chunk`` JSON lines). SigV4 is recomputed by
botocore (signing name ``sagemaker``); a container's own error comes back as SageMaker's
ModelError (424) with its OriginalStatusCode; a stream's bytes are cut into PayloadPart
events at arbitrary places, as SageMaker does. The prompt picks the answer: ``throttle``
(the container's 429), ``invalid`` (its 422), ``busy`` (ServiceUnavailable), ``broken``
(a ModelStreamError mid-stream), ``cut``, ``slow``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aiohttp import web

from eldric.backends import eventstream as es
from tests.fakes import aws_sigv4

REGION = "us-east-1"
TGI, LMI = "tgi-endpoint", "lmi-endpoint"
_CORAL = "http://internal.amazon.com/coral/com.amazon.sagemaker.runtime/"
_TGI_PARAMS = {"best_of", "decoder_input_details", "details", "do_sample", "frequency_penalty",
               "grammar", "max_new_tokens", "repetition_penalty", "return_full_text", "seed",
               "stop", "temperature", "top_k", "top_n_tokens", "top_p", "truncate",
               "typical_p", "watermark", "adapter_id"}


@dataclass
class Knobs:
    requests: list[dict] = field(default_factory=list)
    cancelled: int = 0
    fail_next: list[int] = field(default_factory=list)
    stream_broken: int = 0  # streams to open with a ModelStreamError as the first event


KNOBS = web.AppKey("sagemaker_knobs", Knobs)


def sm_error(status: int, error_type: str, message: str, **extra) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        body=json.dumps({"ErrorCode": error_type, "Message": message,
                                         **extra}).encode(),
                        headers={"x-amzn-ErrorType": f"{error_type}:{_CORAL}"})


def model_error(original: int, body: dict) -> web.Response:
    return sm_error(424, "ModelError", f"Received client error ({original}) from primary with "
                    f"message \"{json.dumps(body)}\".", OriginalStatusCode=original,
                    OriginalMessage=json.dumps(body),
                    LogStreamArn=f"arn:aws:logs:{REGION}:123456789012:log-group:/aws/"
                                 "sagemaker/Endpoints/x")


def _tgi_events(words: list[str]) -> bytes:
    out = b""
    for i, w in enumerate(words):
        out += b"data:" + json.dumps({"index": i + 1, "token": {
            "id": 100 + i, "text": w, "logprob": -0.1, "special": False},
            "generated_text": None, "details": None}).encode() + b"\n\n"
    out += b"data:" + json.dumps({"index": len(words) + 1, "token": {
        "id": 2, "text": "</s>", "logprob": -0.01, "special": True},
        "generated_text": "".join(words), "details": {
            "finish_reason": "eos_token", "generated_tokens": len(words) + 1, "seed": None,
            "input_length": 11}}).encode() + b"\n\n"
    return out


def _lmi_lines(words: list[str]) -> bytes:
    lines = []
    for i, w in enumerate(words):
        delta = {"content": w, **({"role": "assistant"} if i == 0 else {})}
        lines.append({"id": "chatcmpl-0", "object": "chat.completion.chunk",
                      "created": 1712792433, "choices": [{
                          "index": 0, "delta": delta, "logprobs": None,
                          "finish_reason": "eos_token" if i == len(words) - 1 else None}]})
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


async def invoke(request: web.Request) -> web.StreamResponse:
    knobs = request.app[KNOBS]
    raw = await request.read()
    _, denied = aws_sigv4.check(request, raw, "sagemaker", REGION)
    if denied is not None:
        return denied
    name, stream = request.match_info["name"], request.match_info["op"] != "invocations"
    body = json.loads(raw)
    knobs.requests.append({"endpoint": name, "body": body, "stream": stream,
                           "headers": dict(request.headers)})
    if knobs.fail_next:
        status = knobs.fail_next.pop(0)
        return sm_error(status, "ServiceUnavailable" if status == 503 else
                        "ModelNotReadyException", "failing as told")
    if name == TGI:
        if not isinstance(body.get("inputs"), str) or set(body.get("parameters") or {}) \
                - _TGI_PARAMS:
            return model_error(422, {"error": "Input validation error: bad parameters",
                                     "error_type": "validation"})
        said = body["inputs"]
    elif name == LMI:
        if not isinstance(body.get("messages"), list) or "inputs" in body:
            return model_error(400, {"error": "messages is required"})
        said = json.dumps(body["messages"][-1])
    else:
        return sm_error(400, "ValidationError", f"Endpoint {name} of account 123456789012 "
                        "not found.")
    if "throttle" in said:
        return model_error(429, {"error": "Model is overloaded", "error_type": "overloaded"})
    if "invalid" in said:
        return model_error(422, {"error": "Input validation error: `inputs` too long",
                                 "error_type": "validation"})
    if "busy" in said:
        return sm_error(503, "ServiceUnavailable", "The service is unavailable")
    words = [f"w{i} " for i in range(200)] if "slow" in said else ["Hello", " from", " SageMaker"]
    if not stream:
        text = "".join(words)
        if name == TGI:
            return web.json_response([{"generated_text": text, "details": {
                "finish_reason": "eos_token", "generated_tokens": 4, "seed": None,
                "prefill": [], "tokens": []}}])
        return web.json_response({"id": "chatcmpl-0", "object": "chat.completion",
                                  "created": 1711997860, "choices": [{
                                      "index": 0, "message": {"role": "assistant",
                                                              "content": text},
                                      "logprobs": None, "finish_reason": "eos_token"}],
                                  "usage": {"prompt_tokens": 33, "completion_tokens": 3,
                                            "total_tokens": 36}})
    payload = _tgi_events(words) if name == TGI else _lmi_lines(words)
    step = 23  # PayloadPart boundaries fall inside lines
    writes = [es.event("PayloadPart", payload[i:i + step], "application/octet-stream")
              for i in range(0, len(payload), step)]
    if "broken" in said:
        writes = writes[:10] + [es.exception("ModelStreamError", json.dumps({
            "Message": "Your model stream failed", "ErrorCode": "StreamBroken"}).encode())]
    if "cut" in said:
        writes = writes[:10]
    if knobs.stream_broken:  # the 200 stream's first message is the exception
        knobs.stream_broken -= 1
        writes = [es.exception("ModelStreamError", json.dumps({
            "Message": "Your model stream failed", "ErrorCode": "StreamBroken"}).encode())]

    def cancelled() -> None:
        knobs.cancelled += 1
    return await aws_sigv4.stream_reply(
        request, {"X-Amzn-SageMaker-Content-Type": "text/event-stream"}, writes, cancelled,
        cut="cut" in said, delay=0.05 if "slow" in said else 0.0)


def make_app() -> web.Application:
    app = web.Application()
    app[KNOBS] = Knobs()
    app.router.add_post("/endpoints/{name}/{op:invocations|invocations-response-stream}", invoke)
    return app
