"""count_tokens where the backend has no count (eldric.wire.anthropic_count): the prompt
as a tokenizer would see it, and the documented estimate, from the count_tokens
reference's request shape (model, messages, system, tools; no max_tokens)."""

from __future__ import annotations

import json

import pytest

from eldric.errors import BadRequest
from eldric.wire.anthropic_count import CHARS_PER_TOKEN, TOKENS_PER_IMAGE, count, reply

TOOL = {"name": "get_weather", "description": "Weather for a place",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}


def test_the_prompt_is_the_translated_chat():
    c = count(json.dumps({"model": "m", "system": "Be brief.", "tools": [TOOL],
                          "messages": [{"role": "user", "content": "Hello, world"}]}).encode())
    assert c.model == "m"
    assert c.chat["messages"] == [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Hello, world"}]
    assert c.chat["tools"][0]["function"]["name"] == "get_weather"


def test_the_estimate_is_four_characters_a_token_rounded_up_and_images_1600():
    text = "x" * 4001  # 1,001 tokens at four characters each, rounded up
    c = count(json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image", "source": {"type": "url", "url": "https://a.test/i.png"}}]}]}).encode())
    assert CHARS_PER_TOKEN == 4 and TOKENS_PER_IMAGE == 1600
    assert c.estimate() == 1001 + 1600


def test_the_estimate_counts_tool_calls_and_tool_schemas():
    bare = count(json.dumps({"model": "m", "messages": [
        {"role": "user", "content": "?"}]}).encode()).estimate()
    with_tools = count(json.dumps({"model": "m", "tools": [TOOL], "messages": [
        {"role": "user", "content": "?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather",
                                           "input": {"location": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "sunny"}]}]}).encode()).estimate()
    assert with_tools > bare + len("sunny") // 4


def test_max_tokens_is_not_needed_but_messages_are():
    assert count(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}')
    with pytest.raises(BadRequest) as e:
        count(b'{"model": "m"}')
    assert e.value.param == "messages"


def test_reply():
    assert json.loads(reply(42)) == {"input_tokens": 42}
