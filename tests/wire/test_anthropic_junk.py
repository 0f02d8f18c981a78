"""A backend reply that is not what Chat Completions promises, through the /v1/messages
translator: whole() raises a ValueError (the core's retryable 502), feed() ends the
stream in Anthropic's error event — never a TypeError out of the translator."""

from __future__ import annotations

import json

import pytest

from eldric.wire.anthropic import messages
from tests.wire.anthropic_sdk import events

ASK = {"model": "claude-x", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def completion(**choice) -> dict:
    c = {"index": 0, "message": {"role": "assistant", "content": "a"},
         "finish_reason": "stop"} | choice
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [c]}


JUNK_WHOLE = [
    {"choices": 5},
    {"choices": [5]},
    completion(message={"role": "assistant", "tool_calls": 5}),
    completion(message={"role": "assistant", "tool_calls": ["x"]}),
    completion(finish_reason=["stop"]),
    completion(message={"role": "assistant", "tool_calls": [
        dict(CALL, function={"name": "f", "arguments": "[1]"})]}),
    completion(message={"role": "assistant", "tool_calls": [
        dict(CALL, function={"name": "f", "arguments": "{"})]}),
    {"id": "x", "choices": [], "usage": {"prompt_tokens": "many"}},
]


@pytest.mark.parametrize("reply", JUNK_WHOLE)
def test_a_whole_reply_that_is_not_a_completion_is_a_value_error(reply):
    with pytest.raises(ValueError):
        messages(json.dumps(ASK).encode()).whole(json.dumps(reply).encode())


def chunk(**choice) -> dict:
    c = {"index": 0, "delta": {"content": "a"}, "finish_reason": None} | choice
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [c]}


JUNK_CHUNKS = [
    {"choices": 5},
    chunk(delta={"tool_calls": 5}),
    chunk(delta={"tool_calls": ["x"]}),
    chunk(delta={"tool_calls": [{"index": [5], "id": "c", "function": {"name": "f"}}]}),
    chunk(finish_reason=["stop"]),
]


@pytest.mark.parametrize("bad", JUNK_CHUNKS)
def test_a_chunk_that_is_not_a_chunk_ends_the_stream_in_an_error_event(bad):
    t = messages(json.dumps(ASK | {"stream": True}).encode())
    sse = t.feed(b"data: " + json.dumps(chunk()).encode())
    sse += t.feed(b"data: " + json.dumps(bad).encode())
    sse += t.feed(b"data: [DONE]") + t.close()
    ev = events(sse)
    assert ev[-1]["type"] == "error" and ev[-1]["error"]["code"] == "upstream_error"
    assert "message_stop" not in [e["type"] for e in ev]
