"""Chat Completions replies as Ollama's /api/chat and /api/generate replies
(eldric.wire.ollama_reply), judged by the `ollama` Python client itself: its stream reader
and its ChatResponse / GenerateResponse types read every line eldric writes."""

from __future__ import annotations

import json

import ollama
import pytest

from eldric.wire.ollama_chat import chat, generate
from eldric.wire.ollama_reply import Unreadable
from tests.wire.ollama_loop import DONE, Loop, chunk, completion

USER = [{"role": "user", "content": "why is the sky blue?"}]
USAGE = chunk(usage={"prompt_tokens": 26, "completion_tokens": 2, "total_tokens": 28})
TEXT = [chunk({"role": "assistant", "content": ""}), chunk({"content": "The"}),
        chunk({"content": " sky"}), chunk({}, "stop"), USAGE, DONE]


def lines(loop: Loop) -> list[dict]:
    body = loop.replies[-1]
    assert body.endswith(b"\n") and b"\n\n" not in body  # NDJSON, never a blank line
    return [json.loads(line) for line in body.split(b"\n")[:-1]]


def test_a_stream_in_ollamas_shape():
    loop = Loop(chat, lambda sent: TEXT)
    parts = list(loop.client().chat("llama3.2", USER, stream=True))
    assert [p.message.content for p in parts] == ["The", " sky", ""]
    assert [p.done for p in parts] == [False, False, True]
    last = parts[-1]
    assert (last.model, last.message.role, last.done_reason) == ("llama3.2", "assistant", "stop")
    assert (last.prompt_eval_count, last.eval_count) == (26, 2)
    for name in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(getattr(last, name), int) and getattr(last, name) >= 0
    assert last.total_duration >= last.prompt_eval_duration + last.eval_duration
    raw = lines(loop)
    assert all(set(r) >= {"model", "created_at", "message", "done"} for r in raw)
    assert all(r["created_at"].endswith("Z") and len(r["created_at"]) == 30 for r in raw)
    assert "done_reason" not in raw[0] and "context" not in raw[-1]


def test_a_whole_reply():
    loop = Loop(chat, lambda sent: completion({"content": "Hello! How are you today?"}))
    r = loop.client().chat("llama3.2", USER)  # the client's default: stream false
    assert (r.message.role, r.message.content, r.done, r.done_reason) == (
        "assistant", "Hello! How are you today?", True, "stop")
    assert (r.prompt_eval_count, r.eval_count) == (9, 12)
    assert loop.sent[0]["stream"] is False
    assert isinstance(r.eval_duration, int) and r.prompt_eval_duration == 0


TOOL_STREAM = [  # OpenAI's streamed function calling: arguments in fragments
    chunk({"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "city"}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '":"'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'Tokyo"}'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                           "function": {"name": "get_time", "arguments": '{"tz":'}}]}),
    chunk({"tool_calls": [{"index": 1, "function": {"arguments": ' "JST"}'}}]}),
    chunk({}, "tool_calls"), USAGE, DONE]


def test_streamed_tool_calls_arrive_whole_with_object_arguments():
    loop = Loop(chat, lambda sent: TOOL_STREAM)
    parts = list(loop.client().chat("llama3.2", USER, stream=True,
                                    tools=[{"type": "function", "function": {
                                        "name": "get_weather", "parameters": {
                                            "type": "object", "properties": {}}}}]))
    assert [p.done for p in parts] == [False, True]
    calls = parts[0].message.tool_calls
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Tokyo"}), ("get_time", {"tz": "JST"})]
    assert parts[1].done_reason == "stop"  # as Ollama itself reports a tool call
    raw = lines(loop)[0]["message"]["tool_calls"]  # what Open WebUI reads: id and index
    assert [(c["id"], c["function"]["index"]) for c in raw] == [
        ("call_DdmO9pD3xa9XTPNJ32zg2hcA", 0), ("call_2", 1)]
    assert loop.sent[0]["tools"][0]["function"]["name"] == "get_weather"


def test_whole_tool_calls():
    loop = Loop(chat, lambda sent: completion({"content": None, "tool_calls": [
        {"id": "call_abc", "type": "function", "function": {
            "name": "get_current_weather",
            "arguments": '{"format": "celsius", "location": "Paris, FR"}'}}]}, "tool_calls"))
    r = loop.client().chat("llama3.2", USER)
    assert r.message.content == "" and r.done_reason == "stop"
    assert dict(r.message.tool_calls[0].function.arguments) == {
        "format": "celsius", "location": "Paris, FR"}


def test_a_stream_that_ends_early_ends_in_an_error_line():
    loop = Loop(chat, lambda sent: TEXT[:3])  # no finish_reason, no [DONE]
    got = []
    with pytest.raises(ollama.ResponseError):
        for part in loop.client().chat("llama3.2", USER, stream=True):
            got.append(part.message.content)
    assert got == ["The", " sky"]
    assert set(lines(loop)[-1]) == {"error", "code"}


def test_a_finish_without_done_still_ends_with_the_done_line():
    loop = Loop(chat, lambda sent: TEXT[:4])  # finish_reason given, the stream then closed
    parts = list(loop.client().chat("llama3.2", USER, stream=True))
    assert parts[-1].done and parts[-1].prompt_eval_count is None  # no usage was sent


@pytest.mark.parametrize(("finish", "reason"), [
    ("length", "length"), ("content_filter", "stop"), ("stop", "stop")])
def test_finish_reasons(finish, reason):
    events = [chunk({"content": "Hi"}), chunk({}, finish), DONE]
    parts = list(Loop(chat, lambda sent: events).client().chat("m", USER, stream=True))
    assert parts[-1].done_reason == reason


def test_a_refusal_is_the_content():
    events = [chunk({"refusal": "I can't help"}), chunk({}, "stop"), DONE]
    parts = list(Loop(chat, lambda sent: events).client().chat("m", USER, stream=True))
    assert parts[0].message.content == "I can't help"


def test_thinking_is_passed_unless_think_was_false():
    events = [chunk({"reasoning_content": "Hmm."}), chunk({"content": "Blue."}),
              chunk({}, "stop"), DONE]
    parts = list(Loop(chat, lambda sent: events).client().chat("m", USER, stream=True))
    assert [(p.message.thinking, p.message.content) for p in parts] == [
        ("Hmm.", ""), (None, "Blue."), (None, "")]
    parts = list(Loop(chat, lambda sent: events).client().chat("m", USER, stream=True,
                                                               think=False))
    assert [p.message.content for p in parts] == ["Blue.", ""]


def test_an_upstream_error_event_ends_the_stream():
    events = [chunk({"content": "Hi"}),
              b'data: {"error": {"message": "model crashed", "type": "server_error"}}',
              chunk({"content": "never"}), DONE]
    loop = Loop(chat, lambda sent: events)
    with pytest.raises(ollama.ResponseError) as info:
        list(loop.client().chat("m", USER, stream=True))
    assert info.value.error == "model crashed"
    assert len(lines(loop)) == 2


def test_unreadable_events_and_arguments_end_the_stream():
    t = chat(b'{"model": "m", "messages": [{"role": "user", "content": "?"}]}')
    assert json.loads(t.feed(b"data: {nope"))["code"] == "upstream_error"
    assert t.feed(chunk({"content": "late"})) == b"" and t.close() == b""
    t = chat(b'{"model": "m", "messages": [{"role": "user", "content": "?"}]}')
    t.feed(chunk({"tool_calls": [{"index": 0, "id": "c", "function": {
        "name": "f", "arguments": '{"a": '}}]}))
    assert "error" in json.loads(t.feed(chunk({}, "tool_calls")).split(b"\n")[-2])


def test_comments_are_skipped_and_cut_ends_the_stream():
    t = chat(b'{"model": "m", "messages": [{"role": "user", "content": "?"}]}')
    assert t.feed(b": keep-alive") == b""
    assert t.feed(b"data: " + chunk({"content": "a"})[6:].replace(b",", b",\ndata: ", 1)) \
        .startswith(b'{"model":"m"')  # an event in two data lines
    end = t.cut(504, "backend llamacpp at x: idle for 30 s", "upstream_timeout")
    assert json.loads(end) == {"error": "backend llamacpp at x: idle for 30 s",
                               "code": "upstream_timeout"}
    assert end.endswith(b"}\n") and t.close() == b"" and t.feed(DONE) == b""


def test_an_unreadable_whole_reply_is_a_value_error():
    t = chat(b'{"model": "m", "stream": false, "messages": [{"role": "user", "content": "?"}]}')
    for body in (b"<html>", b'{"choices": []}', b'{"choices": "x"}'):
        with pytest.raises(Unreadable):
            t.whole(body)
    assert issubclass(Unreadable, ValueError)


def test_generate_streams_response_fields():
    loop = Loop(generate, lambda sent: TEXT)
    parts = list(loop.client().generate("llama3.2", "Why is the sky blue?", stream=True))
    assert [p.response for p in parts] == ["The", " sky", ""]
    assert parts[-1].done and parts[-1].eval_count == 2 and parts[-1].context is None
    assert all("message" not in r for r in lines(loop))


def test_generate_whole_and_raw():
    loop = Loop(generate, lambda sent: completion({"content": "Because of Rayleigh."}))
    r = loop.client().generate("llama3.2", "Why is the sky blue?", system="Be brief.")
    assert (r.response, r.done, r.done_reason) == ("Because of Rayleigh.", True, "stop")
    assert loop.sent[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    # raw: /v1/completions, whose chunks carry `text`
    events = [chunk(None, choices=[{"index": 0, "text": " The", "finish_reason": None}]),
              chunk(None, choices=[{"index": 0, "text": "", "finish_reason": "length"}]),
              DONE]
    loop = Loop(generate, lambda sent: events)
    parts = list(loop.client().generate("mistral", "[INST] hi [/INST]", raw=True, stream=True))
    assert [p.response for p in parts] == [" The", ""] and parts[-1].done_reason == "length"
    assert "prompt" in loop.sent[0] and "messages" not in loop.sent[0]


def test_the_clients_own_requests_translate():
    """chat() with images as bytes and a Python function as a tool, as people call it."""
    def get_weather(city: str) -> str:
        """Get the weather in a given city

        Args:
          city: The city to get the weather for
        """
        return "sunny"

    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452")
    loop = Loop(chat, lambda sent: completion({"content": "A pig."}))
    loop.client().chat("llava", [{"role": "user", "content": "what is in this image?",
                                  "images": [png]}], tools=[get_weather],
                       options={"temperature": 0, "num_predict": 5}, format="json")
    sent = loop.sent[0]
    assert sent["messages"][0]["content"][1]["image_url"]["url"].startswith(
        "data:image/png;base64,iVBORw0KGgo")
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert (sent["temperature"], sent["max_tokens"]) == (0, 5)
    assert sent["response_format"] == {"type": "json_object"}
