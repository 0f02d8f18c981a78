"""/v1/responses request -> Chat Completions, from the API's documented examples
(O-SPEC request examples, research formats.md §2.2, §2.7), and the bodies it refuses."""

from __future__ import annotations

import msgspec
import pytest

from eldric.errors import EldricError
from eldric.wire.responses import BUILT_IN_TOOLS, translator

# past any recursion limit msgspec meets (mypy, run in the suite, raises it to 16384)
DEEP = 100_000


def chat(body: dict) -> dict:
    return msgspec.json.decode(translator(msgspec.json.encode(body)).request())


def refused(body: dict | bytes) -> EldricError:
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    with pytest.raises(EldricError) as info:
        translator(raw)
    assert info.value.status == 400
    return info.value


def test_string_input_and_instructions():
    assert chat({"model": "gpt-5.4", "instructions": "You are a helpful assistant.",
                 "input": "Tell me a three sentence bedtime story about a unicorn."}) == {
        "model": "gpt-5.4", "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user",
             "content": "Tell me a three sentence bedtime story about a unicorn."}]}


def test_image_input_is_an_image_url_part():
    # O-SPEC "Image input"
    body = chat({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "what is in this image?"},
        {"type": "input_image", "image_url": "https://example.com/a.jpg", "detail": "low"}]}]})
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "what is in this image?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg",
                                            "detail": "low"}}]}]


def test_items_roles_history_and_function_round_trip():
    body = chat({"model": "m", "input": [
        {"type": "message", "role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "Weather "},
                                     {"type": "input_text", "text": "in Boston?"}]},
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "get_weather",
         "arguments": "{\"location\":\"Boston, MA\"}", "status": "completed"},
        {"type": "function_call", "call_id": "call_b", "name": "get_time",
         "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "22C"},
        {"type": "function_call_output", "call_id": "call_b",
         "output": [{"type": "input_text", "text": "noon"}]},
    ]})
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "Weather in Boston?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"location\":\"Boston, MA\"}"}},
            {"id": "call_b", "type": "function",
             "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "22C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "noon"}]


def test_function_call_after_a_tool_result_is_a_new_assistant_turn():
    body = chat({"model": "m", "input": [
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "1"},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"}]})
    assert [m["role"] for m in body["messages"]] == ["assistant", "tool", "assistant"]
    assert body["messages"][2]["content"] is None


WEATHER = {"type": "function", "name": "get_current_weather",
           "description": "Get the current weather in a given location",
           "parameters": {"type": "object", "properties": {
               "location": {"type": "string"},
               "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
               "required": ["location", "unit"]}, "strict": True}


def test_function_tools_and_tool_choice():
    body = chat({"model": "m", "input": "weather?", "tools": [WEATHER],
                 "tool_choice": {"type": "function", "name": "get_current_weather"},
                 "parallel_tool_calls": False})
    fn = {k: v for k, v in WEATHER.items() if k != "type"}
    assert body["tools"] == [{"type": "function", "function": fn}]
    assert body["tool_choice"] == {"type": "function",
                                   "function": {"name": "get_current_weather"}}
    assert body["parallel_tool_calls"] is False
    for choice in ("auto", "required", "none"):
        assert chat({"model": "m", "input": "x", "tools": [WEATHER],
                     "tool_choice": choice})["tool_choice"] == choice


def test_allowed_tools_sends_only_the_allowed_functions():
    other = {**WEATHER, "name": "other"}
    body = chat({"model": "m", "input": "x", "tools": [WEATHER, other], "tool_choice": {
        "type": "allowed_tools", "mode": "required",
        "tools": [{"type": "function", "name": "other"}]}})
    assert [t["function"]["name"] for t in body["tools"]] == ["other"]
    assert body["tool_choice"] == "required"


def test_text_format_sampling_reasoning_stream():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = chat({"model": "m", "input": "x", "max_output_tokens": 64, "temperature": 0.2,
                 "top_p": 0.9, "reasoning": {"effort": "low"}, "stream": True,
                 "store": False, "previous_response_id": "resp_1", "metadata": {"a": "b"},
                 "text": {"format": {"type": "json_schema", "name": "thing",
                                     "schema": schema, "strict": True}}})
    assert body == {"model": "m", "messages": [{"role": "user", "content": "x"}],
                    "response_format": {"type": "json_schema", "json_schema": {
                        "name": "thing", "schema": schema, "strict": True}},
                    "temperature": 0.2, "top_p": 0.9, "max_tokens": 64,
                    "reasoning_effort": "low", "stream": True,
                    "stream_options": {"include_usage": True}}
    assert chat({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}})[
        "response_format"] == {"type": "json_object"}
    assert "response_format" not in chat({"model": "m", "input": "x",
                                          "text": {"format": {"type": "text"}}})


def test_translator_attributes():
    t = translator(b'{"model":"m","input":"x","stream":true}')
    assert (t.upstream_path, t.model, t.stream, t.media_type) == (
        "/v1/chat/completions", "m", True, "text/event-stream")
    assert translator(b'{"model":"m","input":"x"}').stream is False


@pytest.mark.parametrize("tool", sorted(BUILT_IN_TOOLS))
def test_built_in_tools_are_refused_by_name(tool):
    err = refused({"model": "m", "input": "x", "tools": [WEATHER, {"type": tool}]})
    assert (err.param, err.code) == ("tools[1].type", "unsupported_tool")
    assert repr(tool) in err.message


@pytest.mark.parametrize("body, param", [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": 3}, "input"),
    ({"model": "m", "input": [3]}, "input[0]"),
    ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": [{"role": "user", "content": 3}]}, "input[0].content"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file",
                                                            "file_id": "f"}]}]},
     "input[0].content[0].type"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image",
                                                            "file_id": "f"}]}]},
     "input[0].content[0]"),
    ({"model": "m", "input": [{"role": "system", "content": [
        {"type": "input_image", "image_url": "http://x/a.png"}]}]}, "input[0].content"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[0].call_id"),
    ({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]},
     "input[0].output"),
    ({"model": "m", "input": "x", "instructions": 1}, "instructions"),
    ({"model": "m", "input": "x", "tools": {}}, "tools"),
    ({"model": "m", "input": "x", "tools": [{"type": "nope"}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "web_search_preview"}},
     "tool_choice"),
    ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
     "text.format.schema"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "x", "background": True}, "background"),
    ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation"),
])
def test_bad_bodies_are_400_naming_the_field(body, param):
    assert refused(body).param == param


def test_not_json_or_not_an_object():
    refused(b"{nope")
    refused(b"[1]")


@pytest.mark.parametrize("body, param", [
    # a JSON array or object where a name (a dict key, a set member) is looked up
    ({"model": "m", "input": [{"role": []}]}, "input[0].role"),
    ({"model": "m", "input": [{"role": {"a": 1}, "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": "x", "tools": [{"type": {}}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "tools": [{"type": ["function"]}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "tool_choice": {"type": []}}, "tool_choice"),
    ({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}],
      "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": 5}},
     "tool_choice.tools"),
])
def test_unhashable_names_are_400_naming_the_field(body, param):
    assert refused(body).param == param


def test_allowed_tools_with_an_unhashable_name_allows_nothing_by_it():
    body = chat({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}],
                 "tool_choice": {"type": "allowed_tools", "mode": "auto",
                                 "tools": [{"type": "function", "name": []}]}})
    assert "tools" not in body


def test_a_deeply_nested_body_is_a_400():
    err = refused(b'{"model":"m","input":' + b"[" * DEEP + b"]" * DEEP + b"}")
    assert err.status == 400


@pytest.mark.parametrize("field, value", [("stream", "yes"), ("store", "yes"),
                                          ("store", 1), ("previous_response_id", 5)])
def test_fields_of_the_wrong_type_are_400(field, value):
    assert refused({"model": "m", "input": "x", field: value}).param == field
