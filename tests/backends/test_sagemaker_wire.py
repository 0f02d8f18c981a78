"""The SageMaker translation, pure: TGI's and LMI's streams inside PayloadPart bytes cut
anywhere, their whole replies, and SageMaker's errors mapped for failover."""

from __future__ import annotations

import json

import pytest

from eldric.backends import eventstream as es
from eldric.backends.egress import Context
from eldric.backends.native.sagemaker import Lmi, Tgi
from eldric.errors import BadRequest
from eldric.wire.native import sagemaker as wire
from tests.fakes import sagemaker as fake


def _run(egress, payload: bytes, size: int) -> list[dict]:
    wire_bytes = b"".join(es.event("PayloadPart", payload[i:i + size])
                          for i in range(0, len(payload), size))
    out: list[bytes] = []
    for f in es.Frames().feed(wire_bytes):
        out += egress.feed(f)
    assert egress.done
    out += egress.finish()
    assert out[-1] == b"data: [DONE]\n\n"
    return [json.loads(e[6:]) for e in out[:-1]]


def _text(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


CTX = Context(model="ep", include_usage=True)
STREAM = {"model": "ep", "stream": True, "stream_options": {"include_usage": True},
          "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("size", [1, 5, 23, 1000])
def test_tgi_token_stream_in_any_cut(size):
    chunks = _run(Tgi(STREAM, CTX), fake._tgi_events(["Hel", "lo"]), size)
    assert _text(chunks) == "Hello"  # the special </s> token is not text
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 3,
                                   "total_tokens": 14}


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_lmi_json_lines_in_any_cut(size):
    chunks = _run(Lmi(STREAM, CTX), fake._lmi_lines(["Hel", "lo"]), size)
    assert _text(chunks) == "Hello" and chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_lmi_streamed_tool_calls_and_sse_prefixed_lines():
    lines = [{"choices": [{"index": 0, "delta": {"tool_calls": [{
                 "index": 0, "id": "call_1", "type": "function",
                 "function": {"name": "f", "arguments": "{\"a\""}}]}}]},
             {"choices": [{"index": 0, "delta": {"tool_calls": [{
                 "index": 0, "function": {"arguments": ": 1}"}}]}}]},
             {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 2}}]
    payload = b"".join(b"data: " + json.dumps(x).encode() + b"\n\n" for x in lines)
    chunks = _run(Lmi(STREAM, CTX), payload, 9)
    calls = [tc for c in chunks if c["choices"] for tc in
             c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"] == "call_1" and calls[0]["function"]["name"] == "f"
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"a": 1}
    assert chunks[-1]["usage"]["total_tokens"] == 7


_TOKEN = b'PayloadPart\ndata:{"token":{"text":"Hi","special":false}}\n\n'


def test_a_model_stream_error_and_a_tgi_error_line_end_the_stream():
    tgi = Tgi(STREAM, CTX)
    assert tgi.feed(_TOKEN)
    [event] = tgi.feed(b'!ModelStreamError\n{"Message":"broke","ErrorCode":"StreamBroken"}')
    assert json.loads(event[6:])["error"]["message"] == "ModelStreamError: broke"
    assert tgi.done and tgi.finish() == []
    tgi = Tgi(STREAM, CTX)
    assert tgi.feed(_TOKEN)
    [event] = tgi.feed(b'PayloadPart\ndata:{"error":"Request failed during generation",'
                       b'"error_type":"generation"}\n\n')
    assert json.loads(event[6:])["error"]["message"] == "Request failed during generation"


@pytest.mark.parametrize(("frame", "status"), [
    (b'!ModelStreamError\n{"Message":"broke","ErrorCode":"StreamBroken"}', 502),
    (b'!InternalStreamFailure\n{"Message":"internal"}', 502),
    (b'PayloadPart\ndata:{"error":"Model is overloaded","error_type":"overloaded"}\n\n', 429),
    (b'PayloadPart\ndata:{"error":"Input validation error","error_type":"validation"}\n\n',
     400)])
def test_a_failure_before_any_content_is_the_reply_it_stands_for(frame, status):
    """Nothing went out yet: Refused (the call fails over on 429/5xx, answers a 4xx)
    rather than an error event in a 200 stream."""
    from eldric.wire.native.refused import Refused
    for egress in (Tgi(STREAM, CTX), Lmi(STREAM, CTX)):
        if b"error_type" in frame and isinstance(egress, Lmi):
            continue
        with pytest.raises(Refused) as refused:
            egress.feed(frame)
        assert refused.value.status == status
        assert json.loads(refused.value.body)["error"]["message"]
    # a token and then the error line in one PayloadPart: the token is not lost
    tgi = Tgi(STREAM, CTX)
    out = tgi.feed(_TOKEN + b'data:{"error":"boom","error_type":"generation"}\n\n')
    assert len(out) == 2 and json.loads(out[1][6:])["error"]["message"] == "boom"


def test_whole_replies():
    tgi = Tgi({**STREAM, "stream": False}, CTX)
    reply = json.loads(tgi.whole(json.dumps([{"generated_text": "Hi", "details": {
        "finish_reason": "length", "generated_tokens": 4}}]).encode()))
    assert reply["choices"][0]["message"]["content"] == "Hi"
    assert reply["choices"][0]["finish_reason"] == "length"
    with pytest.raises(ValueError):
        tgi.whole(b'{"outputs": "x"}')
    lmi = Lmi({**STREAM, "stream": False}, CTX)
    reply = json.loads(lmi.whole(json.dumps({"choices": [{"message": {
        "role": "assistant", "content": "Hi"}, "finish_reason": "eos_token"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()))
    assert reply["choices"][0]["finish_reason"] == "stop" and lmi.usage == (3, 1)


def test_tgi_requests_and_what_it_refuses():
    body = json.loads(Tgi({"model": "ep", "messages": [{"role": "user", "content": "hi"}],
                           "temperature": 0, "top_p": 1.0, "max_tokens": 5, "stop": "x"},
                          CTX).outbound().body)
    assert body == {"inputs": "User: hi\nAssistant:", "stream": False, "parameters": {
        "details": True, "return_full_text": False, "max_new_tokens": 5, "stop": ["x"]}}
    with pytest.raises(BadRequest):
        Tgi({"model": "ep", "messages": [{"role": "user", "content": "hi"}], "tools": [
            {"type": "function", "function": {"name": "f"}}]}, CTX)


@pytest.mark.parametrize(("status", "body", "want", "code"), [
    (424, {"Message": "x", "OriginalStatusCode": 429,
           "OriginalMessage": '{"error":"Model is overloaded"}'}, 429, "rate_limit_exceeded"),
    (424, {"Message": "x", "OriginalStatusCode": 422,
           "OriginalMessage": '{"error":"Input validation error"}'}, 400, "invalid_request"),
    (424, {"Message": "x", "OriginalStatusCode": 500, "OriginalMessage": "boom"}, 502,
     "upstream_error"),
    (503, {"Message": "unavailable"}, 503, "upstream_overloaded"),
    (429, {"Message": "not ready"}, 429, "rate_limit_exceeded"),
    (400, {"Message": "Endpoint x not found."}, 400, "invalid_request")])
def test_errors(status, body, want, code):
    got, raw = wire.error(status, json.dumps(body).encode())
    assert got == want and json.loads(raw)["error"]["code"] == code
    assert wire.error(502, b"<html/>") == (502, None)


def test_tgi_temperature_zero_stays_greedy_with_top_p_and_top_k():
    """As TGI natively: top_p < 1 or top_k would make TGI sample (``sampling =
    do_sample or has_warpers``), so a temperature of 0 sends neither."""
    tgi = Tgi({"model": "ep", "temperature": 0, "top_p": 0.9, "top_k": 40,
               "messages": [{"role": "user", "content": "hi"}]}, CTX)
    params = json.loads(tgi.outbound().body)["parameters"]
    assert not {"temperature", "top_p", "top_k"} & set(params)
    assert params.get("do_sample", False) is False
