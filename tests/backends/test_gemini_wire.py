"""The Gemini translation (eldric/wire/native/gemini.py, through its Egress in
eldric/backends/native/gemini.py) against the API's documented
shapes: https://ai.google.dev/api/generate-content, /gemini-api/docs/function-calling,
/api/embeddings, /gemini-api/docs/troubleshooting. No server: bytes in, bytes out."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from eldric.backends.egress import Context
from eldric.errors import BadRequest
from eldric.backends.native import gemini as egress
from eldric.wire.native import gemini

CTX = Context(model="gemini-2.5-flash")
PREFIX = "/v1beta/models/gemini-2.5-flash"


def chat(body: dict, ctx: Context = CTX) -> egress.Chat:
    return egress.Chat({"model": "x", **body}, ctx, PREFIX)


def native(body: dict, ctx: Context = CTX) -> dict:
    return json.loads(chat(body, ctx).outbound().body)


def events(out: list[bytes]) -> list[dict]:
    got = []
    for e in out:
        assert e.startswith(b"data: ") and e.endswith(b"\n\n")
        data = e[6:-2]
        got.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return got


def test_request_text_system_and_generation_config():
    out = chat({"messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "hi"},
                             {"role": "assistant", "content": "hello"},
                             {"role": "user", "content": [{"type": "text", "text": "more"}]}],
                "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "stop": "END",
                "seed": 7, "response_format": {"type": "json_object"}}).outbound()
    assert out.path == PREFIX + ":generateContent" and out.query is None
    assert out.framing == "json" and out.method == "POST"
    body = json.loads(out.body)
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]},
                                {"role": "model", "parts": [{"text": "hello"}]},
                                {"role": "user", "parts": [{"text": "more"}]}]
    assert body["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.2,
                                        "topP": 0.9, "seed": 7, "stopSequences": ["END"],
                                        "responseMimeType": "application/json"}


def test_stream_request_goes_to_stream_generate_content_with_alt_sse():
    out = chat({"messages": [{"role": "user", "content": "hi"}], "stream": True}).outbound()
    assert out.path == PREFIX + ":streamGenerateContent"
    assert out.query == "alt=sse" and out.framing == "sse"


def test_request_tools_calls_results_and_images():
    body = native({
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "what is in these?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_2~c2lnbmF0dXJl", "type": "function",
                 "function": {"name": "time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": "call_2~c2lnbmF0dXJl", "content": "noon"}],
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"], "additionalProperties": False}}},
            {"type": "function", "function": {"name": "time"}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}}})
    user, model, results = body["contents"]
    assert user["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert user["parts"][2] == {"fileData": {"fileUri": "https://example.com/cat.jpg",
                                             "mimeType": "image/jpeg"}}
    assert model == {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "time", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"}]}
    # both results in one user turn, as the function-calling guide sends parallel answers
    assert results == {"role": "user", "parts": [
        {"functionResponse": {"name": "weather", "response": {"temp": 21}}},
        {"functionResponse": {"name": "time", "response": {"output": "noon"}}}]}
    decl = body["tools"][0]["functionDeclarations"]
    assert decl[0] == {"name": "weather", "description": "Weather of a city",
                       "parametersJsonSchema": {
                           "type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"], "additionalProperties": False}}
    assert decl[1]["name"] == "time"
    assert body["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["weather"]}}


@pytest.mark.parametrize("choice,config", [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"})])
def test_tool_choice_modes(choice, config):
    body = native({"messages": [{"role": "user", "content": "x"}], "tool_choice": choice,
                   "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert body["toolConfig"]["functionCallingConfig"] == config


def test_options_safety_settings_and_generation_config_are_sent():
    ctx = Context(model="m", options={
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "generation_config": {"thinkingConfig": {"thinkingBudget": 0}}})
    body = native({"messages": [{"role": "user", "content": "x"}]}, ctx)
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert body["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 0}}


@pytest.mark.parametrize("body,param", [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"messages": [{"role": "tool", "tool_call_id": "nobody", "content": "x"}]},
     "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "messages[0].content[0]"),
])
def test_bad_requests_name_the_parameter(body, param):
    with pytest.raises(BadRequest) as exc:
        chat(body)
    assert exc.value.param == param and exc.value.status == 400


# A whole reply as the reference shows one (candidates, usageMetadata, modelVersion).
WHOLE = json.dumps({
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": "Let me think.", "thought": True},
        {"text": "Paris is "}, {"text": "sunny."}]},
        "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 5,
                      "thoughtsTokenCount": 3, "totalTokenCount": 19,
                      "cachedContentTokenCount": 4},
    "modelVersion": "gemini-2.5-flash", "responseId": "resp-123"}).encode()


def test_whole_reply_text_reasoning_and_usage():
    c = chat({"messages": [{"role": "user", "content": "x"}]})
    out = json.loads(c.whole(WHOLE))
    assert out["object"] == "chat.completion" and out["id"] == "resp-123"
    assert out["model"] == "gemini-2.5-flash"
    msg = out["choices"][0]["message"]
    assert msg["content"] == "Paris is sunny." and msg["reasoning_content"] == "Let me think."
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 11, "completion_tokens": 8, "total_tokens": 19,
                            "prompt_tokens_details": {"cached_tokens": 4}}
    assert c.usage == (11, 8)


def test_whole_reply_function_calls_keep_their_signature_in_the_id():
    raw = json.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}},
         "thoughtSignature": "AbC+/="},
        {"functionCall": {"name": "time", "args": {}}}]}, "finishReason": "STOP"}]}).encode()
    out = json.loads(chat({"messages": [{"role": "user", "content": "x"}]}).whole(raw))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    first, second = choice["message"]["tool_calls"]
    assert first["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    assert first["id"].startswith("call_") and first["id"].endswith("~AbC+/=")
    assert "~" not in second["id"]
    # sent back, the signature returns to its call
    again = native({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [first]},
        {"role": "tool", "tool_call_id": first["id"], "content": "sunny"}]})
    assert again["contents"][1]["parts"][0]["thoughtSignature"] == "AbC+/="
    assert again["contents"][2]["parts"][0]["functionResponse"]["name"] == "weather"


@pytest.mark.parametrize("reason,finish", [
    ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("OTHER", "stop"),
    ("MALFORMED_FUNCTION_CALL", "stop")])
def test_finish_reasons(reason, finish):
    raw = json.dumps({"candidates": [{"content": {"parts": [{"text": "a"}]},
                                      "finishReason": reason}]}).encode()
    out = json.loads(chat({"messages": [{"role": "user", "content": "x"}]}).whole(raw))
    assert out["choices"][0]["finish_reason"] == finish


def test_blocked_prompt_is_a_content_filter_finish():
    raw = json.dumps({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                      "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}).encode()
    out = json.loads(chat({"messages": [{"role": "user", "content": "x"}]}).whole(raw))
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["choices"][0]["message"]["content"] == ""


@pytest.mark.parametrize("raw", [b"<html>proxy</html>", b"[1, 2]", b'{"candidates": 5}',
                                 b'{"usageMetadata": {}}'])
def test_unreadable_whole_reply_is_a_value_error(raw):
    with pytest.raises(ValueError):
        chat({"messages": [{"role": "user", "content": "x"}]}).whole(raw)


def sse(obj: dict) -> bytes:
    """One event as the framing hands it over (its bytes without the blank line)."""
    return b"data: " + json.dumps(obj).encode()


STREAM = [
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "The"}]}, "index": 0}],
     "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
     "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": " answer"}]},
                     "index": 0}],
     "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": " is 4."}]},
                     "finishReason": "STOP", "index": 0}],
     "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5,
                       "totalTokenCount": 14}},
]


def test_stream_text_with_usage_chunk():
    c = chat({"messages": [{"role": "user", "content": "x"}], "stream": True,
              "stream_options": {"include_usage": True}})
    out = []
    for i, obj in enumerate(STREAM):
        assert not c.done
        out += c.feed(sse(obj))
    assert c.done
    out += c.finish()
    got = events(out)
    assert got[-1] == "[DONE]"
    texts = [e["choices"][0]["delta"].get("content") for e in got[:-2] if e["choices"]]
    assert "".join(t for t in texts if t) == "The answer is 4."
    assert got[0]["choices"][0]["delta"]["role"] == "assistant"
    assert got[-3]["choices"][0]["finish_reason"] == "stop"
    assert got[-2]["choices"] == [] and got[-2]["usage"]["completion_tokens"] == 5
    assert all(e["usage"] is None for e in got[:-2])
    assert c.usage == (9, 5)


def test_stream_crlf_events_and_comments():
    c = chat({"messages": [{"role": "user", "content": "x"}], "stream": True})
    assert c.feed(b": keep-alive") == []
    out = c.feed(b"data: " + json.dumps(STREAM[2]).encode() + b"\r\n")
    assert events(out)[0]["choices"][0]["delta"]["content"] == " is 4."


def test_stream_function_calls_and_finish_tool_calls():
    c = chat({"messages": [{"role": "user", "content": "x"}], "stream": True})
    out = c.feed(sse({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "sig"},
        {"functionCall": {"name": "b", "args": {}}}]}, "finishReason": "STOP"}]}))
    out += c.finish()
    got = events(out)
    calls = [e["choices"][0]["delta"]["tool_calls"][0] for e in got
             if e != "[DONE]" and e["choices"][0]["delta"].get("tool_calls")]
    assert [(t["index"], t["function"]["name"], t["function"]["arguments"]) for t in calls] \
        == [(0, "a", '{"x":1}'), (1, "b", "{}")]
    assert calls[0]["id"].endswith("~sig")
    assert got[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_reasoning_parts():
    c = chat({"messages": [{"role": "user", "content": "x"}], "stream": True})
    got = events(c.feed(sse({"candidates": [{"content": {"parts": [
        {"text": "hmm", "thought": True}, {"text": "ok"}]}}]})))
    assert got[0]["choices"][0]["delta"]["reasoning_content"] == "hmm"
    assert got[1]["choices"][0]["delta"]["content"] == "ok"


def test_stream_error_event_ends_the_stream():
    c = chat({"messages": [{"role": "user", "content": "x"}], "stream": True})
    c.feed(sse(STREAM[0]))
    got = events(c.feed(sse({"error": {"code": 503, "message": "The model is overloaded.",
                                       "status": "UNAVAILABLE"}})))
    assert got == [{"error": {"message": "The model is overloaded.", "type": "api_error",
                              "param": None, "code": "upstream_unavailable"}}]
    assert c.done and c.finish() == []
    assert c.feed(sse(STREAM[1])) == []


def test_stream_event_that_is_not_json_is_an_error_event():
    c = chat({"messages": [{"role": "user", "content": "x"}], "stream": True})
    got = events(c.feed(b"data: {not json"))
    assert got[0]["error"]["code"] == "upstream_error" and c.done and c.finish() == []


def test_stream_blocked_prompt():
    c = chat({"messages": [{"role": "user", "content": "x"}], "stream": True})
    assert c.feed(sse({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})) == []
    assert c.done
    got = events(c.finish())
    assert got[0]["choices"][0]["delta"]["role"] == "assistant"
    assert got[1]["choices"][0]["finish_reason"] == "content_filter"


def status(code: int, name: str, message: str, reason: str | None = None) -> bytes:
    err: dict = {"code": code, "message": message, "status": name}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                           "reason": reason, "domain": "googleapis.com"}]
    return json.dumps({"error": err}).encode()


@pytest.mark.parametrize("http,raw,want,code", [
    (400, status(400, "INVALID_ARGUMENT", "Invalid JSON payload"), 400, "invalid_request"),
    (400, status(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                 "API_KEY_INVALID"), 502, "backend_auth_failed"),
    (403, status(403, "PERMISSION_DENIED", "denied"), 502, "backend_auth_failed"),
    (404, status(404, "NOT_FOUND", "models/nope is not found"), 404, "model_not_found"),
    (429, status(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), 429, "rate_limit_exceeded"),
    (500, status(500, "INTERNAL", "An internal error has occurred"), 500, "upstream_error"),
    (503, status(503, "UNAVAILABLE", "The model is overloaded"), 503, "upstream_unavailable"),
    (504, status(504, "DEADLINE_EXCEEDED", "Deadline expired"), 504, "upstream_timeout"),
    # the non-SSE stream's error: the Status in a JSON array
    (429, b"[" + status(429, "RESOURCE_EXHAUSTED", "Quota exceeded") + b"]", 429,
     "rate_limit_exceeded"),
])
def test_errors_map_google_rpc_status(http, raw, want, code):
    got, body = chat({"messages": [{"role": "user", "content": "x"}]}).error(http, raw)
    err = json.loads(body)["error"]
    assert got == want and err["code"] == code and set(err) == {"message", "type", "param", "code"}


def test_error_that_is_not_a_status_is_normalised():
    got, body = chat({"messages": [{"role": "user", "content": "x"}]}).error(502, b"<html>bad gateway")
    assert got == 502 and json.loads(body)["error"]["message"] == "<html>bad gateway"


def test_embeddings_request_and_reply_float_and_base64():
    for fmt in ("float", "base64"):
        e = egress.Embed({"input": ["a", "b"], "model": "x", "dimensions": 3,
                          "encoding_format": fmt},
                         Context(model="text-embedding-004", options={"task_type": "RETRIEVAL_QUERY"}),
                         "/v1beta/models/text-embedding-004", "models/text-embedding-004")
        out = e.outbound()
        assert out.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
        assert json.loads(out.body) == {"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]},
             "outputDimensionality": 3, "taskType": "RETRIEVAL_QUERY"} for t in "ab"]}
        reply = json.loads(e.whole(json.dumps(
            {"embeddings": [{"values": [0.5, -1.0, 2.0]}, {"values": [1.0, 0.0, 0.25]}]}).encode()))
        assert reply["object"] == "list" and [d["index"] for d in reply["data"]] == [0, 1]
        first = reply["data"][0]["embedding"]
        if fmt == "base64":
            first = list(struct.unpack("<3f", base64.b64decode(first)))
        assert first == [0.5, -1.0, 2.0]


@pytest.mark.parametrize("body,param", [
    ({"input": [1, 2, 3]}, "input"), ({"input": []}, "input"),
    ({"input": "a", "dimensions": 0}, "dimensions"),
    ({"input": "a", "encoding_format": "int8"}, "encoding_format")])
def test_bad_embeddings_requests(body, param):
    with pytest.raises(BadRequest) as exc:
        egress.Embed(body, CTX, PREFIX, "models/x")
    assert exc.value.param == param


def test_embeddings_count_mismatch_is_unreadable():
    e = egress.Embed({"input": ["a", "b"]}, CTX, PREFIX, "models/x")
    with pytest.raises(ValueError):
        e.whole(b'{"embeddings": [{"values": [1.0]}]}')


def test_model_list():
    raw = json.dumps({"models": [
        {"name": "models/gemini-2.5-flash", "supportedGenerationMethods":
         ["generateContent", "countTokens"]},
        {"name": "models/text-embedding-004", "supportedGenerationMethods": ["embedContent"]},
        {"name": "models/aqa", "supportedGenerationMethods": ["generateAnswer"]}],
        "nextPageToken": ""}).encode()
    assert gemini.model_names(raw) == ["gemini-2.5-flash", "text-embedding-004"]


def test_model_path_quotes_and_strips_models_prefix():
    assert gemini.model_path("models/gemini-2.0-flash") == "/v1beta/models/gemini-2.0-flash"
    assert gemini.model_path("tunedModels/x y") == "/v1beta/models/tunedModels%2Fx%20y"


def test_retry_info_is_a_retry_after_in_whole_seconds():
    def quota(delay):  # type: ignore[no-untyped-def]
        return json.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "q",
                                     "details": [{"@type": "type.googleapis.com/google.rpc."
                                                  "RetryInfo", "retryDelay": delay}]}}).encode()
    assert gemini.retry_after(quota("3.700s")) == "4"
    assert gemini.retry_after(quota("52758s")) == "52758"
    assert gemini.retry_after(quota("0s")) == "1"
    assert gemini.retry_after(quota("soon")) is None
    assert gemini.retry_after(b'{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}') is None
    assert gemini.retry_after(b"<html>busy</html>") is None
