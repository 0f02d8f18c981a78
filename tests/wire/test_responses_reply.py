"""A whole chat.completion -> the Responses API's `response` object, judged by the openai
SDK's own `Response` type and client (research formats.md §2.3, §2.7)."""

from __future__ import annotations

import msgspec
import pytest

from eldric.wire.responses import translator
from tests.wire.responses_sdk import client, validate_response

# OpenAI's documented chat.completion example (Chat Completions API reference)
CHAT = {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion",
        "created": 1741569952, "model": "gpt-4.1-2025-04-14",
        "choices": [{"index": 0, "message": {
            "role": "assistant", "content": "Hello! How can I assist you today?",
            "refusal": None, "annotations": []}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                  "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 4, "audio_tokens": 0}}}

# past any recursion limit msgspec meets (mypy, run in the suite, raises it to 16384)
DEEP = 100_000


def whole(reply: dict, **req) -> bytes:
    t = translator(msgspec.json.encode({"model": "gpt-4.1", "input": "hi", **req}))
    return t.whole(msgspec.json.encode(reply))


def test_text_reply_is_a_completed_response():
    body = whole(CHAT, instructions="be nice", temperature=0.5, store=False,
                 previous_response_id="resp_prev")
    resp = validate_response(body)
    assert resp.id.startswith("resp_") and resp.object == "response"
    assert resp.status == "completed" and resp.incomplete_details is None
    assert resp.error is None and resp.completed_at is not None
    assert resp.model == "gpt-4.1"  # the model asked for
    assert resp.output_text == "Hello! How can I assist you today?"
    [msg] = resp.output
    assert msg.type == "message" and msg.id.startswith("msg_") and msg.status == "completed"
    assert msg.content[0].annotations == []
    assert resp.usage.model_dump(exclude_none=True) == {
        "input_tokens": 19, "input_tokens_details": {"cached_tokens": 3,
                                                     "cache_write_tokens": 0},
        "output_tokens": 10, "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 29}
    assert (resp.instructions, resp.temperature, resp.store, resp.previous_response_id) == (
        "be nice", 0.5, False, "resp_prev")
    # and the SDK's own client reads it as responses.create does
    got = client(body, "application/json").responses.create(model="gpt-4.1", input="hi")
    assert got.output_text == "Hello! How can I assist you today?"


def test_parallel_tool_calls_are_function_call_items():
    calls = [{"id": "call_a", "type": "function", "function": {
                  "name": "get_current_weather",
                  "arguments": "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"}},
             {"id": "call_b", "type": "function",
              "function": {"name": "get_time", "arguments": "{}"}}]
    reply = {**CHAT, "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": calls}}]}
    resp = validate_response(whole(reply))
    assert resp.status == "completed"
    assert [(o.type, o.call_id, o.name, o.arguments, o.status) for o in resp.output] == [
        ("function_call", "call_a", "get_current_weather",
         "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}", "completed"),
        ("function_call", "call_b", "get_time", "{}", "completed")]
    assert all(o.id.startswith("fc_") for o in resp.output)


def test_text_and_a_call_and_a_missing_call_id():
    reply = {**CHAT, "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me check.", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}
    resp = validate_response(whole(reply))
    assert [o.type for o in resp.output] == ["message", "function_call"]
    assert resp.output[1].call_id.startswith("call_")


@pytest.mark.parametrize("finish, reason", [("length", "max_output_tokens"),
                                            ("content_filter", "content_filter")])
def test_length_and_filter_are_incomplete(finish, reason):
    reply = {**CHAT, "choices": [{**CHAT["choices"][0], "finish_reason": finish}]}
    resp = validate_response(whole(reply, max_output_tokens=10))
    assert resp.status == "incomplete" and resp.incomplete_details.reason == reason
    assert resp.max_output_tokens == 10


def test_no_usage_and_empty_content_still_parse():
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                          "finish_reason": "stop"}]}
    resp = validate_response(whole(reply))
    assert resp.output_text == "" and resp.usage.total_tokens == 0


@pytest.mark.parametrize("body", [b"[]", b'{"object": "chat.completion"}'])
def test_a_reply_without_choices_is_a_value_error(body):
    t = translator(b'{"model":"m","input":"x"}')
    with pytest.raises(ValueError):
        t.whole(body)


def _with(path: tuple, value) -> dict:
    reply = msgspec.json.decode(msgspec.json.encode(CHAT))
    target = reply
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return reply


@pytest.mark.parametrize("path, value", [
    (("choices", 0, "message", "tool_calls"), ["x"]),
    (("choices", 0, "message", "tool_calls"), 5),
    (("choices", 0, "message", "tool_calls"), [{"id": [], "function": {"name": "f"}}]),
    (("choices", 0, "message", "tool_calls"), [{"function": {"name": 5}}]),
    (("choices", 0, "message", "tool_calls"), [{"function": {"name": "f", "arguments": {"a": 1}}}]),
    (("choices", 0, "message", "content"), 5),
    (("choices", 0, "finish_reason"), ["stop"]),
    (("choices", 0, "finish_reason"), {}),
])
def test_an_unreadable_reply_is_a_value_error(path, value):
    t = translator(b'{"model":"m","input":"x"}')
    with pytest.raises(ValueError):
        t.whole(msgspec.json.encode(_with(path, value)))


@pytest.mark.parametrize("body", [b"{nope", b"[" * DEEP + b"]" * DEEP])
def test_a_reply_that_is_not_json_is_a_value_error(body):
    """msgspec 0.18's DecodeError is no ValueError: whole() says ValueError itself."""
    t = translator(b'{"model":"m","input":"x"}')
    with pytest.raises(ValueError):
        t.whole(body)


def test_junk_token_counts_count_as_none():
    reply = _with(("usage",), {"prompt_tokens": "x", "completion_tokens": 3,
                               "total_tokens": [], "prompt_tokens_details": {"cached_tokens": "y"}})
    resp = validate_response(whole(reply))
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (0, 3, 3)
