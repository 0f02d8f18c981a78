"""eldric.wire.openai_reply: a whole chat.completion as the chunks it would have streamed
(as_chunks) and a chunk stream as the completion it adds up to (gathered), each checked
by the openai SDK's types and against the other; the one tool-arguments check."""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from eldric.wire.openai_reply import Unreadable, as_chunks, gathered, json_object

COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1741570283, "model": "m",
    "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_b", "type": "function",
             "function": {"name": "time", "arguments": '{"tz": "CET"}'}}]},
        "finish_reason": "tool_calls"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}}


def data(events: list[bytes]) -> list:
    out = []
    for e in events:
        assert e.startswith(b"data: ") and b"\n\n" not in e
        raw = e[len(b"data: "):]
        out.append(raw if raw == b"[DONE]" else json.loads(raw))
    return out


def test_a_completion_as_chunks_and_back():
    ChatCompletion.model_validate(COMPLETION)
    events = as_chunks(json.dumps(COMPLETION).encode())
    chunks = data(events)
    assert chunks[-1] == b"[DONE]"
    for c in chunks[:-1]:
        ChatCompletionChunk.model_validate(c)
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][1]["index"] == 1
    assert chunks[1]["usage"] == COMPLETION["usage"] and chunks[1]["choices"] == []
    back = json.loads(gathered(events))
    ChatCompletion.model_validate(back)
    assert back["choices"] == COMPLETION["choices"] and back["usage"] == COMPLETION["usage"]


def test_fragments_gathered_per_call():
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk",
                                       "created": 1, "model": "m", "choices": [
                                           {"index": 0, "delta": delta,
                                            "finish_reason": finish}]}).encode()
    events = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}),
              chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                     "function": {"name": "f", "arguments": '{"a":'}}]}),
              chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                     "function": {"name": "g", "arguments": "{}"}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
              chunk({}, "tool_calls"), b": keep-alive", b"data: [DONE]"]
    got = json.loads(gathered(events))
    ChatCompletion.model_validate(got)
    msg = got["choices"][0]["message"]
    assert msg["content"] == "Hi" and got["choices"][0]["finish_reason"] == "tool_calls"
    assert [(c["id"], c["function"]) for c in msg["tool_calls"]] == [
        ("call_a", {"name": "f", "arguments": '{"a": 1}'}),
        ("call_b", {"name": "g", "arguments": "{}"})]


def test_a_stream_that_ended_early_is_unreadable():
    early = b'data: {"choices": [{"index": 0, "delta": {"content": "Par"}}]}'
    with pytest.raises(Unreadable):
        gathered([early])
    assert json.loads(gathered([early, b"data: [DONE]"]))["choices"][0]["message"][
        "content"] == "Par"


def test_an_error_event_is_gathered_as_the_error():
    got = gathered([b'data: {"error": {"message": "boom", "code": 500}}'])
    assert json.loads(got) == {"error": {"message": "boom", "code": 500}}


@pytest.mark.parametrize("body", [b"not json", b"5", b'{"choices": 5}', b'{"choices": [5]}'])
def test_not_a_completion_is_unreadable(body):
    with pytest.raises(Unreadable):
        as_chunks(body)


@pytest.mark.parametrize("event", [b"data: 5", b"data: {nope", b'data: {"choices": [5]}',
                                   b'data: {"choices": [{"delta": {"tool_calls": [5]}}]}'])
def test_not_a_chunk_is_unreadable(event):
    with pytest.raises(Unreadable):
        gathered([event])


@pytest.mark.parametrize("args, want", [(None, {}), ("", {}), ("  ", {}), ('{"a": 1}', {"a": 1}),
                                        ({"a": 1}, {"a": 1})])
def test_tool_arguments_as_an_object(args, want):
    assert json_object(args) == want


@pytest.mark.parametrize("args", ["{", "[1]", "5", '"x"'])
def test_tool_arguments_that_are_not_an_object(args):
    with pytest.raises(Unreadable):
        json_object(args)
