"""The Converse translation, pure: request bodies checked against botocore's own service
model of bedrock-runtime (every field name and type as AWS's SDK would send it), replies
and streams as the API reference documents them, errors mapped for failover."""

from __future__ import annotations

import base64
import json

import pytest

from eldric.backends import eventstream as es
from eldric.backends.egress import Context
from eldric.errors import BadRequest
from eldric.backends.native.bedrock import Chat
from eldric.wire.native import bedrock as wire

botocore_session = pytest.importorskip("botocore.session")
from botocore.validate import validate_parameters  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
_MODEL = botocore_session.get_session().get_service_model("bedrock-runtime")


def _valid(body: dict, op: str = "Converse") -> None:
    """The body as botocore's validator sees it (blobs are bytes there, base64 on the
    wire): a field name or type AWS does not define raises."""
    params = json.loads(json.dumps(body))
    for m in params["messages"]:
        for b in m["content"]:
            if "image" in b:
                b["image"]["source"]["bytes"] = base64.b64decode(b["image"]["source"]["bytes"])
    if "outputConfig" in params and "outputConfig" not in \
            _MODEL.operation_model(op).input_shape.members:
        params.pop("outputConfig")  # an older botocore's model predates it
    validate_parameters({"modelId": MODEL, **params}, _MODEL.operation_model(op).input_shape)


def _sdk_path(model: str, op: str) -> str:
    """The request path botocore's own client sends for this model id (its rest-json
    serializer; AWS's canonical form of the path, which SigV4 then encodes again)."""
    from botocore.serialize import create_serializer
    req = create_serializer("rest-json").serialize_to_request(
        {"modelId": model, "messages": []}, _MODEL.operation_model(op))
    return req["url_path"]


def _chat(body: dict, **options) -> Chat:
    return Chat({"model": "x", **body}, Context(model=MODEL, options=options,
                                                      include_usage=False))


def _body(chat: Chat) -> dict:
    return json.loads(chat.outbound().body)


def test_request_shapes_are_converse_s():
    chat = _chat({"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {
                                         "url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": "checking", "tool_calls": [{
            "id": "t1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "rain"},
        {"role": "user", "content": "and tomorrow?"}],
        "tools": TOOLS, "tool_choice": "required", "max_tokens": 99, "temperature": 0.5,
        "top_p": 0.9, "stop": ["END"], "top_k": 40}, additional_fields={"foo": 1})
    body = _body(chat)
    _valid(body)
    _valid(body, "ConverseStream")
    assert body["system"] == [{"text": "be brief"}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"][1] == {"image": {"format": "png",
                                                           "source": {"bytes": PNG}}}
    assert body["messages"][1]["content"] == [
        {"text": "checking"},
        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Oslo"}}}]
    # the tool's result and the next user text merged into one user message
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "t1", "content": [{"text": "rain"}], "status": "success"}},
        {"text": "and tomorrow?"}]
    assert body["inferenceConfig"] == {"maxTokens": 99, "temperature": 0.5, "topP": 0.9,
                                       "stopSequences": ["END"]}
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"] == "object"
    assert body["additionalModelRequestFields"] == {"top_k": 40, "foo": 1}
    out = chat.outbound()
    assert (out.path, out.framing) == (_sdk_path(MODEL, "Converse"), "json")


@pytest.mark.parametrize(("choice", "want"), [
    ("auto", {"auto": {}}), ({"type": "function", "function": {"name": "get_weather"}},
                             {"tool": {"name": "get_weather"}})])
def test_tool_choice(choice, want):
    body = _body(_chat({"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS,
                        "tool_choice": choice}))
    _valid(body)
    assert body["toolConfig"]["toolChoice"] == want


def test_tool_choice_none_leaves_tools_out_unless_the_history_needs_them():
    body = _body(_chat({"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS,
                        "tool_choice": "none"}))
    assert "toolConfig" not in body
    body = _body(_chat({"tools": TOOLS, "tool_choice": "none", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {
            "name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t", "content": "ok"}]}))
    assert "toolChoice" not in body["toolConfig"] and body["toolConfig"]["tools"]


def test_json_schema_and_stream_path_and_arn_escaped():
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.x-v1:0"
    chat = Chat({"model": "x", "stream": True, "messages": [
        {"role": "user", "content": "hi"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}},
        Context(model=arn))
    out = chat.outbound()
    assert out.path == ("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
                        "inference-profile%2Fus.anthropic.x-v1%3A0/converse-stream")
    assert out.path == _sdk_path(arn, "ConverseStream")
    assert out.framing == "aws" and out.headers["Accept"] == "application/vnd.amazon.eventstream"
    body = json.loads(out.body)
    assert json.loads(body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"]) \
        == {"type": "object"}
    _valid(body, "ConverseStream")


@pytest.mark.parametrize("url", ["data:image/bmp;base64,AAAA", "https://example.com/cat.png"])
def test_images_bedrock_cannot_take_are_a_400(url):
    with pytest.raises(BadRequest) as bad:
        _chat({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]})
    assert bad.value.param.startswith("messages[0].content[0]")


def test_whole_reply_text_tools_reasoning_usage():
    raw = json.dumps({"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "thinking", "signature": "sig"}}},
        {"text": "Let me look."},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather",
                     "input": {"city": "Paris"}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 30, "outputTokens": 9,
                                           "totalTokens": 39, "cacheReadInputTokens": 4},
        "metrics": {"latencyMs": 120}}).encode()
    chat = _chat({"messages": [{"role": "user", "content": "hi"}]})
    reply = json.loads(chat.whole(raw))
    msg = reply["choices"][0]["message"]
    assert msg["content"] == "Let me look." and msg["reasoning_content"] == "thinking"
    assert msg["tool_calls"] == [{"id": "tooluse_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    assert reply["usage"] == {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39,
                              "prompt_tokens_details": {"cached_tokens": 4}}
    assert chat.usage == (30, 9)
    with pytest.raises(ValueError):
        chat.whole(b'{"output": {}}')


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("guardrail_intervened", "content_filter"),
    ("content_filtered", "content_filter"), ("model_context_window_exceeded", "length"),
    ("malformed_model_output", "stop")])
def test_stop_reasons(stop, finish):
    assert wire.finish_reason(stop, False) == finish


def _events(frames: list[bytes], **body) -> tuple[list[dict], Chat]:
    chat = _chat({"stream": True, "messages": [{"role": "user", "content": "hi"}], **body})
    cutter = es.Frames()
    out: list[bytes] = []
    for raw in frames:
        for f in cutter.feed(raw):
            out += chat.feed(f)
    assert chat.done
    out += chat.finish()
    assert out[-1] == b"data: [DONE]\n\n"
    return [json.loads(e[6:]) for e in out[:-1]], chat


def test_stream_text_and_usage():
    from tests.fakes.bedrock import text_events
    chunks, chat = _events(text_events(["Hel", "lo"]), stream_options={"include_usage": True})
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 19
    assert chat.usage == (12, 7)


def test_stream_tool_call_arguments_by_block():
    from tests.fakes.bedrock import tool_events
    chunks, _ = _events(tool_events(), tools=TOOLS)
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"] == "tooluse_abc123" and calls[0]["function"]["name"] == "get_weather"
    assert {tc["index"] for tc in calls} == {0}
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(("name", "status", "code"), [
    ("throttlingException", 429, "rate_limit_exceeded"),
    ("serviceUnavailableException", 503, "upstream_overloaded"),
    ("modelStreamErrorException", 502, "upstream_error"),
    ("validationException", 400, "invalid_request"),
    ("internalServerException", 500, "upstream_error")])
def test_stream_exceptions_end_with_one_error_event(name, status, code):
    chat = _chat({"stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert chat.feed(b'messageStart\n{"role":"assistant"}') == []  # the role waits
    assert chat.feed(b'contentBlockDelta\n{"contentBlockIndex":0,"delta":{"text":"Hi"}}')
    [event] = chat.feed(b"!" + name.encode() + b'\n{"message":"it broke"}')
    err = json.loads(event[6:])["error"]
    assert (err["message"], err["code"]) == ("it broke", code)
    assert chat.done and chat.finish() == []
    assert wire.error(0, b'{"message":"x"}', name)[0] == status


@pytest.mark.parametrize(("name", "status", "code"), [
    ("throttlingException", 429, "rate_limit_exceeded"),
    ("serviceUnavailableException", 503, "upstream_overloaded"),
    ("validationException", 400, "invalid_request")])
def test_an_exception_before_any_content_is_the_reply_it_stands_for(name, status, code):
    """Not an error event the client gets at once: Refused, so the call fails over
    (429/5xx) or answers the status (4xx), as for the same error as an HTTP reply."""
    from eldric.wire.native.refused import Refused
    chat = _chat({"stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert chat.feed(b'messageStart\n{"role":"assistant"}') == []
    with pytest.raises(Refused) as refused:
        chat.feed(b"!" + name.encode() + b'\n{"message":"slow down"}')
    assert refused.value.status == status
    assert json.loads(refused.value.body)["error"]["code"] == code


@pytest.mark.parametrize(("status", "body", "want", "code"), [
    (429, {"message": "Too many requests"}, 429, "rate_limit_exceeded"),
    (503, {"message": "busy"}, 503, "upstream_overloaded"),
    (408, {"message": "model timed out"}, 504, "upstream_timeout"),
    (424, {"message": "model failed"}, 502, "upstream_error"),
    (400, {"message": "bad"}, 400, "invalid_request"),
    (404, {"message": "no model"}, 404, "model_not_found"),
    (400, {"__type": "com.amazon.coral#ThrottlingException", "message": "slow"}, 429,
     "rate_limit_exceeded")])
def test_error_replies_mapped(status, body, want, code):
    got, raw = wire.error(status, json.dumps(body).encode())
    err = json.loads(raw)["error"]
    assert (got, err["code"], err["message"]) == (want, code, body["message"])


def test_an_error_body_that_is_not_bedrock_s_keeps_openai_s_shape():
    assert wire.error(502, b"<html>bad gateway</html>") == (502, None)
    got, raw = _chat({"messages": [{"role": "user", "content": "hi"}]}).error(
        502, b"<html>bad gateway</html>")
    assert got == 502 and json.loads(raw)["error"]["message"] == "<html>bad gateway</html>"


def test_model_list_keeps_text_models():
    raw = json.dumps({"modelSummaries": [
        {"modelId": "a", "outputModalities": ["TEXT"]},
        {"modelId": "e", "outputModalities": ["EMBEDDING"]}]}).encode()
    assert wire.model_ids(raw) == ["a"]


def test_model_list_leaves_out_models_not_callable_on_demand():
    """ListFoundationModels also lists provisioned-throughput-only variants
    (``…-v1:0:48k``) and models reached through an inference profile only; Converse by
    their id answers a ValidationException, so they are not advertised."""
    raw = json.dumps({"modelSummaries": [
        {"modelId": "anthropic.claude-3-haiku-20240307-v1:0", "outputModalities": ["TEXT"],
         "inferenceTypesSupported": ["ON_DEMAND"]},
        {"modelId": "anthropic.claude-3-haiku-20240307-v1:0:48k",
         "outputModalities": ["TEXT"], "inferenceTypesSupported": ["PROVISIONED"]},
        {"modelId": "anthropic.claude-3-7-sonnet-20250219-v1:0", "outputModalities": ["TEXT"],
         "inferenceTypesSupported": ["INFERENCE_PROFILE"]}]}).encode()
    assert wire.model_ids(raw) == ["anthropic.claude-3-haiku-20240307-v1:0"]
