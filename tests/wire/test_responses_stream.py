"""A Chat Completions stream -> the Responses event stream, judged by the openai SDK: each
event validated against its ResponseStreamEvent union, and the whole stream read by its
responses.stream() helper (ResponseStreamState) to the final response
(research formats.md §2.4, §2.6)."""

from __future__ import annotations

import msgspec
import pytest

from eldric.wire.responses import translator
from tests.wire.responses_sdk import events_of, sdk_stream

ARGS = ["{\"", "location", "\":\"", "Boston", ", MA", "\"}"]


def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish}]
    return b"data: " + msgspec.json.encode({
        "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
        "model": "gpt-4o-mini", "choices": choices, **extra})


USAGE = chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21})
DONE = b"data: [DONE]"


def run(events: list[bytes], *, close: bool = True, **req) -> bytes:
    t = translator(msgspec.json.encode({"model": "m", "input": "hi", "stream": True, **req}))
    out = b"".join(t.feed(e) for e in events)
    return out + (t.close() if close else b"")


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def text_stream(*pieces: str, finish: str = "stop") -> list[bytes]:
    return [chunk({"role": "assistant", "content": ""}),
            *(chunk({"content": p}) for p in pieces), chunk({}, finish), USAGE, DONE]


def test_text_stream_in_the_documented_order():
    out = run(text_stream("Hi", " there", "!"))
    events = events_of(out)
    assert types(events) == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == [] and events[0]["response"]["usage"] is None
    assert events[7]["text"] == "Hi there!"
    done = events[-1]["response"]
    assert done["id"] == events[0]["response"]["id"]
    assert done["usage"]["input_tokens"] == 9 and done["usage"]["total_tokens"] == 21
    assert done["output"][0]["content"][0]["text"] == "Hi there!"
    _, final = sdk_stream(out)
    assert final.output_text == "Hi there!" and final.status == "completed"
    assert final.usage.output_tokens == 12


def parallel_calls() -> list[bytes]:
    """Two calls, as OpenAI streams them: the first chunk of each has id and name, the
    arguments come in fragments."""
    out = [chunk({"role": "assistant", "content": None, "tool_calls": [{
        "index": 0, "id": "call_a", "type": "function",
        "function": {"name": "get_weather", "arguments": ""}}]})]
    out += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in ARGS]
    out.append(chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                      "function": {"name": "get_time", "arguments": "{}"}}]}))
    return [*out, chunk({}, "tool_calls"), USAGE, DONE]


def test_parallel_function_calls_with_exact_arguments():
    out = run(parallel_calls(), tools=[{"type": "function", "name": "get_weather",
                                        "parameters": {"type": "object"}, "strict": False}])
    events = events_of(out)
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
              and e["output_index"] == 0]
    assert deltas == ARGS
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["call_id"], e["item"]["name"], e["item"]["arguments"])
            for e in added] == [(0, "call_a", "get_weather", ""), (1, "call_b", "get_time", "")]
    assert added[0]["item"]["id"].startswith("fc_")
    dones = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["name"], e["arguments"]) for e in dones] == [
        ("get_weather", "".join(ARGS)), ("get_time", "{}")]
    sdk_events, final = sdk_stream(out)
    snapshots = [e.snapshot for e in sdk_events
                 if e.type == "response.function_call_arguments.delta"]
    assert snapshots[len(ARGS) - 1] == "{\"location\":\"Boston, MA\"}"
    assert [(o.call_id, o.name, o.arguments) for o in final.output] == [
        ("call_a", "get_weather", "{\"location\":\"Boston, MA\"}"), ("call_b", "get_time", "{}")]


def test_text_then_a_call():
    events = [chunk({"content": "Let me look."}),
              chunk({"tool_calls": [{"index": 0, "id": "c", "function": {
                  "name": "f", "arguments": "{\"x\":1}"}}]}), chunk({}, "tool_calls"), DONE]
    out = run(events)
    got = events_of(out)
    # the message is done before the call is added
    assert types(got).index("response.output_item.done") < [
        i for i, e in enumerate(got) if e["type"] == "response.output_item.added"][1]
    _, final = sdk_stream(out)
    assert [o.type for o in final.output] == ["message", "function_call"]
    assert final.output_text == "Let me look."


def test_length_ends_incomplete():
    out = run(text_stream("a", "b", finish="length"), max_output_tokens=2)
    events = events_of(out)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    with pytest.raises(RuntimeError):  # by design: the SDK's helper wants completed
        sdk_stream(out)


def test_empty_deltas_and_keepalives_send_nothing_but_the_start():
    t = translator(b'{"model":"m","input":"hi","stream":true}')
    first = events_of(t.feed(chunk({"role": "assistant"})))
    assert types(first) == ["response.created", "response.in_progress"]
    assert t.feed(chunk({"content": ""})) == b""
    assert t.feed(b": keep-alive") == b""
    assert t.feed(b"data: not json") == b""


def test_without_done_a_finished_stream_completes_at_close():
    out = run(text_stream("ok")[:-1])  # no [DONE]
    assert events_of(out)[-1]["type"] == "response.completed"
    _, final = sdk_stream(out)
    assert final.output_text == "ok"


def test_a_stream_that_ends_early_fails():
    out = run([chunk({"content": "par"}), chunk({"tool_calls": [
        {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{\"a"}}]})])
    events = events_of(out)
    assert types(events)[-2:] == ["error", "response.failed"]
    assert events[-2]["code"] == "upstream_incomplete"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    # the message was over when the call began; the call was cut
    assert [o["status"] for o in failed["output"]] == ["completed", "incomplete"]
    with pytest.raises(RuntimeError):
        sdk_stream(out)
    # [DONE] without a finish_reason is an early end too
    assert events_of(run([chunk({"content": "x"}), DONE]))[-1]["type"] == "response.failed"


def test_nothing_at_all_still_starts_then_fails():
    events = events_of(run([]))
    assert types(events) == ["response.created", "response.in_progress", "error",
                             "response.failed"]


def test_an_upstream_error_event_fails_with_its_code():
    err = b'data: {"error": {"message": "overloaded", "type": "api_error", "code": "x_busy"}}'
    t = translator(b'{"model":"m","input":"hi","stream":true}')
    events = events_of(t.feed(chunk({"content": "a"})) + t.feed(err) + t.close())
    assert events[-2]["code"] == "x_busy" and events[-2]["message"] == "overloaded"
    assert events[-1]["type"] == "response.failed"
    assert t.feed(chunk({"content": "late"})) == b""


def test_cut_mid_reply_and_after_the_end():
    t = translator(b'{"model":"m","input":"hi","stream":true}')
    head = t.feed(chunk({"content": "a"}))
    events = events_of(head + t.cut(502, "the upstream went away", "upstream_error"))
    assert events[-2]["code"] == "upstream_error"
    assert events[-1]["response"]["error"]["message"] == "the upstream went away"
    assert t.final is not None and t.final["status"] == "failed"
    assert t.cut(502, "again", "upstream_error") == b"" and t.close() == b""


def test_final_is_the_completed_response_for_the_store():
    t = translator(b'{"model":"m","input":"hi","stream":true}')
    out = b"".join(t.feed(e) for e in text_stream("x")) + t.close()
    assert t.final == events_of(out)[-1]["response"]


def test_event_data_split_over_lines_and_crlf():
    t = translator(b'{"model":"m","input":"hi","stream":true}')
    t.feed(chunk({"content": "a"}))
    assert b"output_text.delta" in t.feed(b'data: {"choices":[{"index":0,\r\ndata: '
                                          b'"delta":{"content":"b"}}]}')
