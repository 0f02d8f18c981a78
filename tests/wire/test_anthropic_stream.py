"""A backend's chat.completion.chunk stream -> Anthropic's event stream
(eldric.wire.anthropic_stream, through the /v1/messages Translator), judged by the
anthropic SDK: its messages.stream() helper (accumulate_event) and create(stream=True),
its RawMessageStreamEvent type for every event.

The chunk transcripts follow OpenAI's streaming shapes (the chunk object, the tool-call
fragments of its function-calling guide: id and name first, then the arguments in pieces,
`"id": null` on the pieces, the usage chunk with empty choices, `[DONE]`); each is checked
against the openai SDK's ChatCompletionChunk first, so the input is what a backend sends.
"""

from __future__ import annotations

import json

import anthropic
import pytest
from openai.types.chat import ChatCompletionChunk

from eldric.wire.anthropic import messages
from tests.wire.anthropic_sdk import events, raw_stream, stream_helper

HEAD = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
        "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb"}
USAGE = {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
ARGS_PARIS = '{"location": "Paris, France"}'
ARGS_BOGOTA = '{"location": "Bogotá, Colombia", "unit": "celsius"}'


def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> dict:
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
    return {**HEAD, "choices": [choice], **extra}


def usage_chunk(usage: dict = USAGE) -> dict:
    return {**HEAD, "choices": [], "usage": usage}


def call(index: int, fragment: str, cid: str | None = None, name: str | None = None) -> dict:
    c: dict = {"index": index, "function": {"arguments": fragment}}
    if cid:
        c.update(id=cid, type="function")
        c["function"]["name"] = name
    return {"tool_calls": [c]}


def pieces(s: str, n: int = 7) -> list[str]:
    return [s[i:i + n] for i in range(0, len(s), n)]


TEXT = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello"}),
        chunk({"content": " there"}), chunk({"content": "!"}), chunk({}, "stop"),
        usage_chunk(), "[DONE]"]

TOOLS = [chunk({"role": "assistant", "content": None,
                **call(0, "", "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather")}),
         *[chunk(call(0, p)) for p in pieces(ARGS_PARIS)],
         chunk(call(1, "", "call_2", "get_weather")),
         *[chunk(call(1, p)) for p in pieces(ARGS_BOGOTA, 5)],
         chunk({}, "tool_calls"), usage_chunk(), "[DONE]"]


def translate(transcript: list, *, close: bool = True, model: str = "claude-x",
              stop: list[str] | None = None) -> bytes:
    body = {"model": model, "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "Hi"}]}
    if stop:
        body["stop_sequences"] = stop
    t = messages(json.dumps(body).encode())
    out = []
    for item in transcript:
        if isinstance(item, dict):
            ChatCompletionChunk.model_validate(item)
            item = json.dumps(item)
        out.append(t.feed(b"data: " + item.encode()))
    if close:
        out.append(t.close())
    return b"".join(out)


def names(sse: bytes) -> list[str]:
    return [e["type"] for e in events(sse)]


def test_text_the_full_event_sequence():
    sse = translate(TEXT)
    assert names(sse) == ["message_start", "content_block_start", "content_block_delta",
                          "content_block_delta", "content_block_delta", "content_block_stop",
                          "message_delta", "message_stop"]
    ev = events(sse)
    assert ev[0]["message"]["id"] == "msg_123" and ev[0]["message"]["model"] == "claude-x"
    assert ev[0]["message"]["stop_reason"] is None and ev[0]["message"]["content"] == []
    assert ev[1]["content_block"] == {"type": "text", "text": ""}
    assert ev[6] == {"type": "message_delta",
                     "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                     "usage": {"input_tokens": 9, "output_tokens": 12}}
    final, text, _ = stream_helper(sse)
    assert text == "Hello there!" and final.content[0].text == "Hello there!"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 12)


def test_text_through_the_raw_stream():
    got = raw_stream(translate(TEXT))
    assert [e.type for e in got][0] == "message_start" and got[-1].type == "message_stop"
    assert "".join(e.delta.text for e in got if e.type == "content_block_delta") == "Hello there!"


def test_parallel_tool_calls_arguments_exact():
    sse = translate(TOOLS)
    ev = events(sse)
    starts = [e for e in ev if e["type"] == "content_block_start"]
    assert [s["content_block"] for s in starts] == [
        {"type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather",
         "input": {}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}}]
    for index, args in ((0, ARGS_PARIS), (1, ARGS_BOGOTA)):
        streamed = "".join(e["delta"]["partial_json"] for e in ev
                           if e["type"] == "content_block_delta" and e["index"] == index)
        assert streamed == args  # fragments relayed as they came, none lost or reordered
    # one block open at a time: the first closes before the second starts
    ns = names(sse)
    second = [i for i, n in enumerate(ns) if n == "content_block_start"][1]
    assert ns[second - 1] == "content_block_stop"
    final, _, seen = stream_helper(sse)
    assert [b.input for b in final.content] == [json.loads(ARGS_PARIS), json.loads(ARGS_BOGOTA)]
    assert final.stop_reason == "tool_use"
    assert any(e.type == "input_json" for e in seen)


def test_text_then_a_tool_call():
    sse = translate([chunk({"role": "assistant", "content": "Let me look."}),
                     chunk(call(0, ARGS_PARIS, "call_1", "get_weather")),
                     chunk({}, "tool_calls"), "[DONE]"])
    final, text, _ = stream_helper(sse)
    assert text == "Let me look."
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == json.loads(ARGS_PARIS)


def test_ollama_numbers_parallel_calls_zero_and_tells_them_apart_by_id():
    sse = translate([chunk({"role": "assistant", "content": ""}),
                     chunk(call(0, ARGS_PARIS, "call_a", "get_weather")),
                     chunk(call(0, ARGS_BOGOTA, "call_b", "get_weather")),
                     chunk({}, "tool_calls"), "[DONE]"])
    final, _, _ = stream_helper(sse)
    assert [(b.id, b.input) for b in final.content] == [
        ("call_a", json.loads(ARGS_PARIS)), ("call_b", json.loads(ARGS_BOGOTA))]


def test_a_tool_call_that_says_stop_is_still_tool_use():
    sse = translate([chunk(call(0, ARGS_PARIS, "call_1", "get_weather")), chunk({}, "stop"),
                     "[DONE]"])
    assert stream_helper(sse)[0].stop_reason == "tool_use"


@pytest.mark.parametrize("finish, reason", [("length", "max_tokens"),
                                            ("content_filter", "refusal"),
                                            ("stop", "end_turn")])
def test_finish_reasons(finish, reason):
    sse = translate([chunk({"content": "Par"}), chunk({}, finish), "[DONE]"])
    assert stream_helper(sse)[0].stop_reason == reason


def test_a_stop_sequence_the_backend_names():
    # vLLM says which stop string it stopped on: choice.stop_reason
    stopped = chunk({}, "stop")
    stopped["choices"][0]["stop_reason"] = "END"
    final = stream_helper(translate([chunk({"content": "A"}), stopped, "[DONE]"],
                                    stop=["END"]))[0]
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")


def test_cached_prompt_tokens_are_cache_reads():
    sse = translate([chunk({"content": "A"}), chunk({}, "stop"), usage_chunk(
        {**USAGE, "prompt_tokens_details": {"cached_tokens": 4}}), "[DONE]"])
    usage = stream_helper(sse)[0].usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (5, 4, 12)


def test_empty_deltas_reasoning_and_comments_send_nothing_of_their_own():
    sse = translate([chunk({"role": "assistant"}), chunk({"content": ""}),
                     chunk({"reasoning_content": "hmm"}), ": keep-alive", "not json",
                     chunk({"content": "Hi"}), chunk({}, "stop"), "[DONE]"])
    assert names(sse) == ["message_start", "content_block_start", "content_block_delta",
                          "content_block_stop", "message_delta", "message_stop"]


def test_no_usage_chunk_reads_as_zero():
    sse = translate([chunk({"content": "Hi"}), chunk({}, "stop"), "[DONE]"])
    assert events(sse)[-2]["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_an_empty_reply_is_still_a_whole_message():
    final = stream_helper(translate(["[DONE]"]))[0]
    assert final.content == [] and final.stop_reason == "end_turn"


def test_a_finish_without_done_finishes_at_close():
    sse = translate([chunk({"content": "Hi"}), chunk({}, "stop")])
    assert names(sse)[-2:] == ["message_delta", "message_stop"]


def test_nothing_after_the_message_stop():
    body = b'{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]}'
    t = messages(body)
    t.feed(b'data: ' + json.dumps(chunk({}, "stop")).encode())
    assert t.feed(b"data: [DONE]").endswith(
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert t.feed(b'data: ' + json.dumps(chunk({"content": "late"})).encode()) == b""
    assert t.close() == b"" and t.cut(502, "gone", "upstream_error") == b""


def test_a_stream_that_ends_early_ends_in_an_error_event():
    sse = translate([chunk({"content": "Par"})])
    ev = events(sse)
    assert ev[-1]["type"] == "error" and ev[-1]["error"]["type"] == "api_error"
    assert ev[-1]["error"]["code"] == "upstream_error"
    with pytest.raises(anthropic.APIStatusError):
        stream_helper(sse)


@pytest.mark.parametrize("err, etype", [
    ({"code": 500, "message": "slot unavailable", "type": "server_error"}, "api_error"),
    ({"message": "Rate limited", "type": "rate_limit_error", "code": None}, "rate_limit_error"),
    ("oops", "api_error"),
])
def test_a_backend_error_event_mid_stream(err, etype):
    sse = translate([chunk({"content": "Par"}), json.dumps({"error": err}),
                     chunk({"content": "is"})])
    ev = events(sse)
    assert [e["type"] for e in ev] == ["message_start", "content_block_start",
                                       "content_block_delta", "error"]
    assert ev[-1]["error"]["type"] == etype and ev[-1]["error"]["code"] == "upstream_error"
    with pytest.raises(anthropic.APIStatusError):
        raw_stream(sse)


def test_cut_mid_reply():
    body = b'{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]}'
    t = messages(body)
    first = t.feed(b'data: ' + json.dumps(chunk({"content": "Hi"})).encode())
    sse = first + t.cut(504, "backend went quiet", "upstream_timeout") + t.close()
    ev = events(sse)
    assert ev[-1] == {"type": "error", "error": {"type": "timeout_error",
                                                 "message": "backend went quiet",
                                                 "code": "upstream_timeout"}}
