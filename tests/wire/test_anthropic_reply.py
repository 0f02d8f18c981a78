"""A backend's whole chat.completion -> an Anthropic Message (Translator.whole), judged
by the anthropic SDK: its client reads it (messages.create) and its Message type
validates it. The completions follow OpenAI's chat.completion object (checked against the
openai SDK's ChatCompletion first)."""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletion

from eldric.wire.anthropic import messages
from tests.wire.anthropic_sdk import whole

ARGS = '{"location": "Boston, MA"}'


def completion(message: dict, finish: str = "stop", **extra) -> dict:
    c = {"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1741570283,
         "model": "gpt-4o-2024-08-06",
         "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, **message},
                      "logprobs": None, "finish_reason": finish}],
         "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                   "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}},
         **extra}
    ChatCompletion.model_validate(c)
    return c


def translate(c: dict) -> bytes:
    t = messages(b'{"model": "claude-x", "max_tokens": 64, '
                 b'"messages": [{"role": "user", "content": "Hi"}]}')
    assert not t.stream
    return t.whole(json.dumps(c).encode())


def test_text():
    out = translate(completion({"content": "The image shows a wooden boardwalk."}))
    assert json.loads(out) == {
        "id": "msg_abc123", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "The image shows a wooden boardwalk."}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 1117, "output_tokens": 46}}
    msg = whole(out)
    assert msg.content[0].text == "The image shows a wooden boardwalk."


def test_tool_calls_become_tool_use_blocks_with_objects():
    out = translate(completion({"content": None, "tool_calls": [
        {"id": "call_abc123", "type": "function",
         "function": {"name": "get_current_weather", "arguments": ARGS}},
        {"id": "call_def456", "type": "function",
         "function": {"name": "get_time", "arguments": ""}}]}, "tool_calls"))
    msg = whole(out)
    assert [(b.type, b.id, b.name, b.input) for b in msg.content] == [
        ("tool_use", "call_abc123", "get_current_weather", {"location": "Boston, MA"}),
        ("tool_use", "call_def456", "get_time", {})]
    assert msg.stop_reason == "tool_use"


@pytest.mark.parametrize("finish, reason", [("length", "max_tokens"),
                                            ("content_filter", "refusal"),
                                            ("tool_calls", "tool_use")])
def test_finish_reasons(finish, reason):
    assert whole(translate(completion({"content": "x"}, finish))).stop_reason == reason


def test_a_stop_sequence_the_backend_names_and_cached_tokens():
    c = completion({"content": "x"})
    c["choices"][0]["stop_reason"] = "###"  # vLLM: the stop string it stopped on
    c["usage"]["prompt_tokens_details"]["cached_tokens"] = 1000
    msg = whole(translate(c))
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "###")
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens) == (117, 1000)
    c["choices"][0]["stop_reason"] = 128009  # a stop token id names no string
    assert whole(translate(c)).stop_reason == "end_turn"


def test_a_refusal_is_text_and_an_empty_reply_no_block():
    msg = whole(translate(completion({"content": None, "refusal": "I can't help with that."},
                                     "content_filter")))
    assert msg.content[0].text == "I can't help with that." and msg.stop_reason == "refusal"
    assert whole(translate(completion({"content": ""}))).content == []


@pytest.mark.parametrize("body", [
    b"<html>gateway</html>", b"[]", b'{"object": "chat.completion", "choices": []}',
    b'{"choices": [{"index": 0, "message": "hi"}]}',
    json.dumps(completion({"content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]},
        "tool_calls")).encode(),
    json.dumps(completion({"content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]},
        "tool_calls")).encode(),
])
def test_not_a_completion_is_a_value_error(body):
    t = messages(b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}')
    with pytest.raises(ValueError):
        t.whole(body)
