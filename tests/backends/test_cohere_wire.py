"""Cohere v2 translation, pure: OpenAI bodies to /v2/chat, /v2/embed, /v2/rerank and the
documented replies and stream events back (https://docs.cohere.com/reference/chat,
/docs/streaming, /docs/tool-use-streaming, /reference/embed, /reference/rerank)."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from eldric.backends.egress import Context
from eldric.errors import BadRequest
from eldric.wire.native import cohere, cohere_ops
from tests.fakes.cohere import stream_events

CTX = Context(model="command-a-03-2025")


def _sent(egress) -> dict:
    return json.loads(egress.outbound().body)


def _events(out: list[bytes]) -> list[dict | str]:
    got: list[dict | str] = []
    for ev in out:
        assert ev.startswith(b"data: ") and ev.endswith(b"\n\n")
        data = ev[6:-2]
        got.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return got


def test_request_maps_roles_tools_and_sampling():
    body = {
        "model": "ignored", "stream": True, "max_tokens": 50, "temperature": 0.3,
        "top_p": 0.9, "top_k": 40, "seed": 7, "stop": ["END"], "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=",
                                                    "detail": "low"}}]},
            {"role": "assistant", "content": "I will look it up.", "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "lookup", "arguments": "{\"q\": \"x\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "lookup", "description": "find", "parameters": {
                "type": "object", "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": "required",
    }
    e = cohere.ChatEgress(body, CTX)
    out = e.outbound()
    assert out.path == "/v2/chat" and out.method == "POST" and out.framing == "sse"
    assert out.headers["Accept"] == "text/event-stream"
    sent = _sent(e)
    assert sent["model"] == "command-a-03-2025" and sent["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=",
                                                "detail": "low"}}]},
        {"role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "lookup", "arguments": "{\"q\": \"x\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
    ]
    assert sent["tools"][0] == {"type": "function", "function": {
        "name": "lookup", "description": "find",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
    assert sent["tool_choice"] == "REQUIRED"
    assert (sent["max_tokens"], sent["temperature"], sent["p"], sent["k"], sent["seed"]) == \
        (50, 0.3, 0.9, 40, 7)
    assert sent["stop_sequences"] == ["END"]
    assert (sent["frequency_penalty"], sent["presence_penalty"]) == (0.1, 0.2)


def test_a_named_tool_choice_offers_that_tool_alone_required():
    tools = [{"type": "function", "function": {"name": n}} for n in ("a", "b")]
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "hi"}], "tools": tools,
                           "tool_choice": {"type": "function", "function": {"name": "b"}}}, CTX)
    sent = _sent(e)
    assert [t["function"]["name"] for t in sent["tools"]] == ["b"]
    assert sent["tool_choice"] == "REQUIRED"
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "hi"}], "tools": tools,
                           "tool_choice": "none"}, CTX)
    assert _sent(e)["tool_choice"] == "NONE"
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "hi"}], "tools": tools}, CTX)
    assert "tool_choice" not in _sent(e)


def test_cohere_only_fields_pass_as_they_are():
    docs = [{"id": "d1", "data": {"text": "Toronto is in Canada"}}]
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "where?"}],
                           "documents": docs, "safety_mode": "STRICT", "logprobs": True}, CTX)
    sent = _sent(e)
    assert sent["documents"] == docs and sent["safety_mode"] == "STRICT"
    assert "logprobs" not in sent  # OpenAI's logprobs are not Cohere's: not sent


def test_json_mode_becomes_response_format():
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "json"}],
                           "response_format": {"type": "json_schema", "json_schema": {
                               "name": "x", "schema": {"type": "object"}}}}, CTX)
    assert _sent(e)["response_format"] == {"type": "json_object",
                                           "json_schema": {"type": "object"}}


def test_bad_body_is_a_400_naming_the_parameter():
    with pytest.raises(BadRequest) as info:
        cohere.ChatEgress({"messages": []}, CTX)
    assert info.value.param == "messages"


def test_whole_reply_text_tools_usage():
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "hi"}]}, CTX)
    raw = json.dumps({
        "id": "c5d1", "finish_reason": "TOOL_CALL",
        "message": {"role": "assistant", "tool_plan": "I will check the weather.",
                    "tool_calls": [{"id": "get_weather_1", "type": "function", "function": {
                        "name": "get_weather", "arguments": "{\"location\":\"Toronto\"}"}}]},
        "usage": {"billed_units": {"input_tokens": 9, "output_tokens": 5},
                  "tokens": {"input_tokens": 1200, "output_tokens": 30}, "cached_tokens": 1000},
    }).encode()
    out = json.loads(e.whole(raw))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I will check the weather."
    assert choice["message"]["tool_calls"] == [{"id": "get_weather_1", "type": "function",
                                                "function": {"name": "get_weather",
                                                             "arguments": "{\"location\":\"Toronto\"}"}}]
    assert out["usage"]["prompt_tokens"] == 1200 and out["usage"]["completion_tokens"] == 30
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 1000}
    assert e.usage == (1200, 30)


@pytest.mark.parametrize("reason,finish", [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"),
                                           ("MAX_TOKENS", "length")])
def test_whole_reply_finish_reasons(reason, finish):
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "hi"}]}, CTX)
    raw = json.dumps({"id": "x", "finish_reason": reason, "message": {
        "role": "assistant", "content": [{"type": "thinking", "thinking": "hm"},
                                         {"type": "text", "text": "Hello"}]}}).encode()
    out = json.loads(e.whole(raw))
    assert out["choices"][0]["finish_reason"] == finish
    assert out["choices"][0]["message"]["content"] == "Hello"
    assert out["choices"][0]["message"]["reasoning_content"] == "hm"


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"id": "x", "finish_reason": "ERROR",'
                                 b' "message": {"role": "assistant"}}'])
def test_whole_reply_unreadable_or_failed_is_a_value_error(raw):
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "hi"}]}, CTX)
    with pytest.raises(ValueError):
        e.whole(raw)


def _feed_all(e, frames) -> list[dict | str]:
    out = []
    for f in frames:
        out += e.feed(f.rstrip(b"\n"))
    return _events(out + e.finish())


def test_stream_text_then_usage_and_done():
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "hi"}], "stream": True,
                           "stream_options": {"include_usage": True}}, CTX)
    got = _feed_all(e, stream_events(["Hel", "lo"], usage=(7, 2)))
    assert e.done and e.usage == (7, 2)
    deltas = [g["choices"][0]["delta"] for g in got if isinstance(g, dict) and g["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content") or "" for d in deltas) == "Hello"
    finishes = [g["choices"][0]["finish_reason"] for g in got if isinstance(g, dict) and g["choices"]]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert got[-2]["choices"] == [] and got[-2]["usage"]["total_tokens"] == 9
    assert got[-1] == "[DONE]"


def test_stream_tool_calls():
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "weather?"}],
                           "stream": True}, CTX)
    frames = stream_events([], tool_plan="I will check.",
                           calls=[("get_weather_1", "get_weather", ['{"loc', 'ation":"Toronto"}'])],
                           finish="TOOL_CALL")
    got = _feed_all(e, frames)
    deltas = [g["choices"][0]["delta"] for g in got if isinstance(g, dict) and g["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "I will check."
    calls = [c for d in deltas for c in d.get("tool_calls", [])]
    assert calls[0]["id"] == "get_weather_1" and calls[0]["function"]["name"] == "get_weather"
    assert "".join(c["function"]["arguments"] for c in calls) == '{"location":"Toronto"}'
    assert {c["index"] for c in calls} == {0}
    assert got[-2]["choices"][0]["finish_reason"] == "tool_calls" and got[-1] == "[DONE]"


def test_stream_error_in_message_end_is_one_error_event_and_nothing_after():
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "hi"}], "stream": True}, CTX)
    frames = stream_events(["par"], finish="ERROR", error="internal failure")
    got = _feed_all(e, frames)
    assert e.done
    assert got[-1]["error"]["message"] == "internal failure"
    assert got[-1]["error"]["code"] == "upstream_error"
    assert not any(g == "[DONE]" for g in got)


def test_stream_cut_short_is_not_done():
    e = cohere.ChatEgress({"messages": [{"role": "user", "content": "hi"}], "stream": True}, CTX)
    for f in stream_events(["a", "b"])[:3]:
        e.feed(f.rstrip(b"\n"))
    assert not e.done  # the call sends the cut's error event


@pytest.mark.parametrize("status,want", [(429, 429), (500, 500), (503, 503), (400, 400),
                                         (401, 401), (499, 502)])
def test_errors_keep_their_status(status, want):
    got, body = cohere.error(status, b'{"message": "too many requests"}')
    assert got == want
    err = json.loads(body)["error"]
    assert err["message"] == "too many requests"
    assert err["code"] == {429: "rate_limit_exceeded"}.get(
        want, "upstream_error" if want >= 500 else None)
    got, body = cohere.error(502, b"<html>bad gateway</html>")  # not Cohere's shape
    assert json.loads(body)["error"]["message"] == "<html>bad gateway</html>"


def test_embed_request_and_reply_float_and_base64():
    e = cohere_ops.EmbedEgress({"model": "m", "input": ["a", "b"]},
                               Context(model="embed-v4.0", options={"input_type": "search_query"}))
    sent = json.loads(e.outbound().body)
    assert e.outbound().path == "/v2/embed"
    assert sent == {"model": "embed-v4.0", "texts": ["a", "b"], "embedding_types": ["float"],
                    "input_type": "search_query"}
    raw = json.dumps({"id": "e1", "embeddings": {"float": [[0.5, -1.0], [0.25, 2.0]]},
                      "texts": ["a", "b"], "meta": {"billed_units": {"input_tokens": 2}}}).encode()
    out = json.loads(e.whole(raw))
    assert [d["embedding"] for d in out["data"]] == [[0.5, -1.0], [0.25, 2.0]]
    assert out["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    e = cohere_ops.EmbedEgress({"input": "a", "encoding_format": "base64", "dimensions": 256},
                               Context(model="embed-v4.0"))
    assert json.loads(e.outbound().body)["output_dimension"] == 256
    assert json.loads(e.outbound().body)["input_type"] == "search_document"
    vec = json.loads(e.whole(raw))["data"][1]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(vec)) == (0.25, 2.0)


@pytest.mark.parametrize("body,param", [({"input": [1, 2]}, "input"), ({"input": []}, "input"),
                                        ({"input": "a", "encoding_format": "x"}, "encoding_format")])
def test_embed_bad_body(body, param):
    with pytest.raises(BadRequest) as info:
        cohere_ops.EmbedEgress(body, CTX)
    assert info.value.param == param


def test_rerank_both_shapes():
    e = cohere_ops.RerankEgress({"model": "x", "query": "q", "top_n": 2,
                                 "documents": ["zero", {"text": "one"}, "two"]},
                                Context(model="rerank-v3.5"))
    assert e.outbound().path == "/v2/rerank"
    assert json.loads(e.outbound().body) == {"model": "rerank-v3.5", "query": "q", "top_n": 2,
                                             "documents": ["zero", "one", "two"]}
    raw = json.dumps({"id": "r1", "results": [{"index": 2, "relevance_score": 0.9},
                                              {"index": 0, "relevance_score": 0.1}],
                      "meta": {"api_version": {"version": "2"},
                               "billed_units": {"search_units": 1}}}).encode()
    out = json.loads(e.whole(raw))
    assert out["results"] == [{"index": 2, "relevance_score": 0.9, "document": {"text": "two"}},
                              {"index": 0, "relevance_score": 0.1, "document": {"text": "zero"}}]
    assert out["meta"]["billed_units"] == {"search_units": 1} and out["model"] == "rerank-v3.5"
    e = cohere_ops.RerankEgress({"query": "q", "documents": ["a"], "return_documents": False},
                                CTX)
    assert "document" not in json.loads(
        e.whole(b'{"results": [{"index": 0, "relevance_score": 0.5}]}'))["results"][0]
    with pytest.raises(ValueError):
        e.whole(b'{"results": [{"index": 5, "relevance_score": 0.5}]}')
    with pytest.raises(BadRequest):
        cohere_ops.RerankEgress({"query": "q", "documents": [3]}, CTX)


def test_model_list():
    raw = json.dumps({"models": [{"name": "command-a-03-2025", "endpoints": ["chat"]},
                                 {"name": "embed-v4.0", "endpoints": ["embed"]}],
                      "next_page_token": None}).encode()
    assert cohere_ops.models_of(raw) == ["command-a-03-2025", "embed-v4.0"]
