"""A client's Anthropic Messages request -> the Chat Completions body eldric sends
(eldric.wire.anthropic_request, through the Factory eldric.wire.anthropic.messages).

Requests are the Messages reference's own examples (the anthropic SDK's docstrings: the
get_stock_price tool, its tool_use / tool_result round trip) and the shapes of its
types; the translations are checked against the openai SDK's request types
(CompletionCreateParams) so what goes upstream is a Chat Completions body.
"""

from __future__ import annotations

import json

import pytest
from openai.types.chat import completion_create_params

from eldric.errors import BadRequest
from eldric.wire.anthropic import messages

M = "claude-sonnet-4-5"
STOCK_TOOL = {
    "name": "get_stock_price",
    "description": "Get the current stock price for a given ticker symbol.",
    "input_schema": {"type": "object",
                     "properties": {"ticker": {"type": "string",
                                               "description": "The stock ticker symbol, "
                                                              "e.g. AAPL for Apple Inc."}},
                     "required": ["ticker"]},
}
TOOL_USE = {"type": "tool_use", "id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
            "name": "get_stock_price", "input": {"ticker": "^GSPC"}}
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
               "content": "259.75 USD"}
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
       "AAAABJRU5ErkJggg==")  # a 1x1 PNG


def chat(**body) -> dict:
    body = {"model": M, "max_tokens": 1024, **body}
    t = messages(json.dumps(body).encode())
    assert t.upstream_path == "/v1/chat/completions" and t.model == M
    out = json.loads(t.request())
    # a Chat Completions body as the openai SDK types it: every required key there
    for key in completion_create_params.CompletionCreateParamsBase.__required_keys__:
        assert key in out
    return out


def refused(**body) -> BadRequest:
    """The Factory's 400; a field given as None is left out."""
    body = {k: v for k, v in {"model": M, "max_tokens": 1024, **body}.items() if v is not None}
    with pytest.raises(BadRequest) as e:
        messages(json.dumps(body).encode())
    assert e.value.status == 400 and e.value.code == "invalid_request"
    return e.value


def user(content) -> dict:
    return {"role": "user", "content": content}


def test_text_with_a_system_prompt_and_sampling():
    out = chat(system="You are terse.", messages=[user("Hello, Claude")],
               stop_sequences=["\n\nHuman:"], temperature=0.5, top_p=0.9, top_k=40,
               metadata={"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"})
    assert out == {"model": M, "max_tokens": 1024,
                   "messages": [{"role": "system", "content": "You are terse."},
                                {"role": "user", "content": "Hello, Claude"}],
                   "stop": ["\n\nHuman:"], "temperature": 0.5, "top_p": 0.9, "top_k": 40,
                   "user": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"}


def test_system_blocks_and_system_role_messages_keep_their_place():
    out = chat(system=[{"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "Two."}],
               messages=[user("Hi"), {"role": "system", "content": [{"type": "text",
                                                                     "text": "Now French."}]},
                         user("Bonjour")])
    assert out["messages"] == [{"role": "system", "content": "One.\n\nTwo."},
                               {"role": "user", "content": "Hi"},
                               {"role": "system", "content": "Now French."},
                               {"role": "user", "content": "Bonjour"}]


def test_multi_turn_and_consecutive_turns_merged():
    out = chat(messages=[user("Hello there."),
                         {"role": "assistant", "content": "Hi, I'm Claude. How can I help?"},
                         user("Can you explain LLMs in plain English?"),
                         user([{"type": "text", "text": "Briefly."}]),
                         {"role": "assistant", "content": [{"type": "text", "text": "Sure"}]}])
    assert out["messages"] == [
        {"role": "user", "content": "Hello there."},
        {"role": "assistant", "content": "Hi, I'm Claude. How can I help?"},
        {"role": "user", "content": "Can you explain LLMs in plain English?\n\nBriefly."},
        {"role": "assistant", "content": "Sure"}]  # a prefill: the backend continues it


def test_images_base64_and_url():
    out = chat(messages=[user([
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url",
                                     "url": "https://upload.wikimedia.org/a.jpg"}},
        {"type": "text", "text": "What is in these images?"}])])
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/a.jpg"}},
        {"type": "text", "text": "What is in these images?"}]}]


def test_tools_and_the_tool_round_trip():
    out = chat(tools=[STOCK_TOOL], tool_choice={"type": "auto"},
               messages=[user("What's the S&P 500 at today?"),
                         {"role": "assistant", "content": [
                             {"type": "text", "text": "Let me check."}, TOOL_USE]},
                         user([TOOL_RESULT, {"type": "text", "text": "And in EUR?"}])])
    assert out["tools"] == [{"type": "function", "function": {
        "name": "get_stock_price", "parameters": STOCK_TOOL["input_schema"],
        "description": STOCK_TOOL["description"]}}]
    assert out["tool_choice"] == "auto" and "parallel_tool_calls" not in out
    assert out["messages"][1:] == [
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "type": "function",
             "function": {"name": "get_stock_price", "arguments": '{"ticker":"^GSPC"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
         "content": "259.75 USD"},
        {"role": "user", "content": "And in EUR?"}]


def test_tool_results_in_blocks_errors_and_images():
    out = chat(tools=[STOCK_TOOL], messages=[
        user("Quote two"),
        {"role": "assistant", "content": [TOOL_USE, {**TOOL_USE, "id": "toolu_2"}]},
        user([{"type": "tool_result", "tool_use_id": TOOL_USE["id"], "content": [
                  {"type": "text", "text": "259.75"}, {"type": "text", "text": "USD"},
                  {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                               "data": PNG}}]},
              {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
               "content": "ticker not found"}])])
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "tool", "user"]
    assert len(out["messages"][1]["tool_calls"]) == 2 and out["messages"][1]["content"] is None
    assert out["messages"][2]["content"] == "259.75\n\nUSD"
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "toolu_2",
                                  "content": "Error: ticker not found"}
    # a tool message holds text only: the result's image follows as the user's
    assert out["messages"][4]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]


@pytest.mark.parametrize("choice, expected", [
    ({"type": "auto"}, "auto"),
    ({"type": "any"}, "required"),
    ({"type": "none"}, "none"),
    ({"type": "tool", "name": "get_stock_price"},
     {"type": "function", "function": {"name": "get_stock_price"}}),
])
def test_tool_choice(choice, expected):
    out = chat(tools=[STOCK_TOOL], tool_choice=choice, messages=[user("?")])
    assert out["tool_choice"] == expected and "parallel_tool_calls" not in out
    out = chat(tools=[STOCK_TOOL], tool_choice={**choice, "disable_parallel_tool_use": True},
               messages=[user("?")])
    assert out["tool_choice"] == expected and out["parallel_tool_calls"] is False


def test_tool_choice_without_tools_is_dropped():
    assert "tool_choice" not in chat(tool_choice={"type": "any"}, messages=[user("?")])


def test_thinking_blocks_sent_back_are_left_out():
    out = chat(messages=[user("2+2?"), {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Simple.", "signature": "EqQB"},
        {"type": "redacted_thinking", "data": "xyz"}, {"type": "text", "text": "4"}]},
        user("Sure?")])
    assert out["messages"][1] == {"role": "assistant", "content": "4"}


def test_a_plain_text_document_is_text():
    out = chat(messages=[user([{"type": "document", "title": "Notes", "source": {
        "type": "text", "media_type": "text/plain", "data": "The grass is green."}},
        {"type": "text", "text": "What colour?"}])])
    assert out["messages"][0]["content"] == "Notes\n\nThe grass is green.\n\nWhat colour?"


def test_streaming_asks_the_backend_for_its_usage():
    t = messages(json.dumps({"model": M, "max_tokens": 5, "stream": True,
                             "messages": [user("Hi")]}).encode())
    assert t.stream and t.media_type == "text/event-stream"
    out = json.loads(t.request())
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert "stream" not in chat(messages=[user("Hi")])


@pytest.mark.parametrize("body, param", [
    ({"messages": [user("Hi")], "max_tokens": None}, "max_tokens"),
    ({"messages": [user("Hi")], "max_tokens": 0}, "max_tokens"),
    ({"messages": []}, "messages"),
    ({"messages": "Hi"}, "messages"),
    ({"messages": [{"role": "robot", "content": "Hi"}]}, "messages[0].role"),
    ({"messages": [user([{"type": "video"}])]}, "messages[0].content[0].type"),
    ({"messages": [user([{"type": "text"}])]}, "messages[0].content[0].text"),
    ({"messages": [user([{"type": "image", "source": {
        "type": "base64", "media_type": "image/tiff", "data": "x"}}])]},
     "messages[0].content[0].source.media_type"),
    ({"messages": [user([{"type": "image", "source": {"type": "file", "file_id": "f"}}])]},
     "messages[0].content[0].source"),
    ({"messages": [user([{"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "x"}}])]},
     "messages[0].content[0].source"),
    ({"messages": [user([TOOL_USE])]}, "messages[0].content[0]"),
    ({"messages": [{"role": "assistant", "content": [TOOL_RESULT]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "system", "content": [TOOL_RESULT]}]}, "messages[0].content[0]"),
    ({"messages": [user("Hi")], "system": [{"type": "image"}]}, "system[0].type"),
    ({"messages": [user("Hi")], "temperature": 1.5}, "temperature"),
    ({"messages": [user("Hi")], "stop_sequences": "END"}, "stop_sequences"),
    ({"messages": [user("Hi")], "tools": [{"name": "web_search", "type": "web_search_20250305"}]},
     "tools[0].type"),
    ({"messages": [user("Hi")], "tools": [{"name": "t"}]}, "tools[0].input_schema"),
    ({"messages": [user("Hi")], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"messages": [user("Hi")], "tool_choice": {"type": "maybe"}}, "tool_choice.type"),
])
def test_bad_requests_name_the_field(body, param):
    assert refused(**body).param == param


def test_a_model_is_required():
    assert refused(model=None, messages=[user("Hi")]).param == "model"


@pytest.mark.parametrize("raw, code", [(b"", "invalid_body"), (b"{nope", "invalid_json"),
                                       (b"[1]", "invalid_request")])
def test_not_a_request_body(raw, code):
    with pytest.raises(BadRequest) as e:
        messages(raw)
    assert e.value.status == 400 and e.value.code == code
