"""Parallel tool calls whose fragments interleave (a fragment of call 0 after call 1
began): each block is whole at its content_block_stop, as the anthropic SDK's
MessageStream snapshot shows it, one block open at a time."""

from __future__ import annotations

import json

from eldric.wire.anthropic import messages
from tests.wire.anthropic_sdk import client, events

ASK = {"model": "claude-x", "max_tokens": 64, "stream": True,
       "messages": [{"role": "user", "content": "Hi"}]}


def chunk(calls: list[dict] | None = None, finish: str | None = None) -> bytes:
    delta = {"tool_calls": calls} if calls else {}
    return b"data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                   "choices": [{"index": 0, "delta": delta,
                                                "finish_reason": finish}]}).encode()


def call(index: int, args: str, cid: str | None = None, name: str | None = None) -> dict:
    c: dict = {"index": index, "function": {"arguments": args}}
    if cid:
        c.update(id=cid, type="function")
        c["function"]["name"] = name
    return c


INTERLEAVED = [chunk([call(0, '{"city":', "call_a", "weather")]),
               chunk([call(1, '{"tz":', "call_b", "time")]),
               chunk([call(0, ' "Paris"}')]),
               chunk([call(1, ' "CET"}')]),
               chunk(None, "tool_calls"), b"data: [DONE]"]


def translate(transcript: list[bytes]) -> bytes:
    t = messages(json.dumps(ASK).encode())
    return b"".join(t.feed(e) for e in transcript) + t.close()


def test_each_block_is_whole_when_it_stops():
    sse = translate(INTERLEAVED)
    ev = events(sse)
    open_, stops = None, []
    for e in ev:  # one block open at a time, every delta on the open one
        if e["type"] == "content_block_start":
            assert open_ is None
            open_ = e["index"]
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_
        elif e["type"] == "content_block_stop":
            assert e["index"] == open_
            open_ = None
    with client(sse).messages.stream(model="m", max_tokens=64,
                                     messages=[{"role": "user", "content": "Hi"}]) as s:
        for e in s:
            if e.type == "content_block_stop":
                stops.append((e.content_block.id, e.content_block.input))
        final = s.get_final_message()
    assert stops == [("call_a", {"city": "Paris"}), ("call_b", {"tz": "CET"})]
    assert [(b.name, b.input) for b in final.content] == [("weather", {"city": "Paris"}),
                                                         ("time", {"tz": "CET"})]
    assert final.stop_reason == "tool_use"


def test_calls_one_after_another_still_stream_as_they_come():
    sse = translate([chunk([call(0, '{"city": "Paris"}', "call_a", "weather")]),
                     chunk([call(1, '{"tz":', "call_b", "time")]),
                     chunk([call(1, ' "CET"}')]), chunk(None, "tool_calls"), b"data: [DONE]"])
    kinds = [(e["type"], e.get("index")) for e in events(sse)]
    assert kinds[1:8] == [("content_block_start", 0), ("content_block_delta", 0),
                          ("content_block_stop", 0), ("content_block_start", 1),
                          ("content_block_delta", 1), ("content_block_delta", 1),
                          ("content_block_stop", 1)]
