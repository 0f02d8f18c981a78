"""OpenAI chat completions <-> Anthropic Messages translation, the cloud role's egress
(eldric.wire.anthropic_egress).

Unit tests both ways, the streaming translator fed with the fake Anthropic's transcripts,
map_error for every Anthropic error type, and the outputs parsed by the official openai
SDK's own types and stream accumulator (so the shapes are exactly what it accepts).
"""

from __future__ import annotations

import json

import aiohttp
import msgspec
import openai
import pytest
from aiohttp import web
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from eldric.errors import BadRequest
from eldric.roles.cloud.anthropic_call import map_error
from eldric.wire.anthropic_egress import DEFAULT_MAX_TOKENS, from_anthropic, to_anthropic
from eldric.wire.anthropic_egress_stream import StreamTranslator
from eldric.wire.anthropic_shared import ANTHROPIC_VERSION, FINISH
from eldric.stream.sse import EventSplitter
from tests.fakes import anthropic as fake

M = "claude-backend-name"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a place",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}


def req(*messages, **kw) -> dict:
    return {"model": "client-name", "messages": list(messages), **kw}


def user(content) -> dict:
    return {"role": "user", "content": content}


def bad(body: dict, param: str | None) -> BadRequest:
    with pytest.raises(BadRequest) as e:
        to_anthropic(body, model=M)
    assert e.value.param == param
    assert e.value.status == 400
    return e.value


# ---------------------------------------------------------------- request: OpenAI -> Anthropic

def test_text_system_and_defaults():
    out = to_anthropic(req({"role": "system", "content": "Be brief."},
                           {"role": "developer", "content": [{"type": "text", "text": "No puns."}]},
                           user("Hi")), model=M)
    assert out == {"model": M, "max_tokens": DEFAULT_MAX_TOKENS,
                   "system": "Be brief.\n\nNo puns.",
                   "messages": [{"role": "user", "content": "Hi"}]}
    assert to_anthropic(req(user("Hi")), model=M, default_max_tokens=77)["max_tokens"] == 77
    assert "system" not in to_anthropic(req(user("Hi")), model=M)


def test_multi_turn_and_same_role_merging():
    out = to_anthropic(req(user("one"), user([{"type": "text", "text": "two"}]),
                           {"role": "assistant", "content": "three"},
                           {"role": "system", "content": "late system"},
                           {"role": "assistant", "content": [{"type": "text", "text": "four"}]},
                           user("five")), model=M)
    assert out["system"] == "late system"
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"},
                                     {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "three"},
                                          {"type": "text", "text": "four"}]},
        {"role": "user", "content": "five"}]


def test_empty_text_is_dropped_and_all_empty_is_refused():
    out = to_anthropic(req(user("q"), {"role": "assistant", "content": ""}, user("r")), model=M)
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "q"}, {"type": "text", "text": "r"}]}]
    bad(req({"role": "system", "content": "only a system prompt"}), "messages")
    bad(req(), "messages")
    bad(req({"role": "function", "name": "f", "content": "x"}), "messages[0].role")


def test_images_base64_and_url():
    out = to_anthropic(req(user([
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=",
                                            "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}])), model=M)
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]
    img = {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}
    assert "image/bmp" in bad(req(user([img])), "messages[0].content[0]").message
    img = {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}
    bad(req(user([img])), "messages[0].content[0]")
    img = {"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}}
    bad(req(user(["skip", img])), "messages[0].content[0]")
    audio = {"type": "input_audio", "input_audio": {"data": "AAA=", "format": "wav"}}
    bad(req(user([{"type": "text", "text": "hi"}, audio])), "messages[0].content[1]")


def test_sampling_stop_stream_and_limits():
    out = to_anthropic(req(user("x"), temperature=0.2, top_p=0.9, stop="END", stream=True,
                           max_tokens=50, user="user-123"), model=M)
    assert (out["temperature"], out["top_p"], out["stop_sequences"], out["stream"],
            out["max_tokens"], out["metadata"]) == (0.2, 0.9, ["END"], True, 50,
                                                    {"user_id": "user-123"})
    out = to_anthropic(req(user("x"), stop=["a", "b"], max_tokens=50, max_completion_tokens=9,
                           stream=False, n=1), model=M)
    assert out["stop_sequences"] == ["a", "b"] and out["max_tokens"] == 9
    assert "stream" not in out and "temperature" not in out
    assert "stop_sequences" not in to_anthropic(req(user("x"), stop=None), model=M)
    bad(req(user("x"), n=2), "n")
    bad(req(user("x"), temperature=1.5), "temperature")
    bad(req(user("x"), max_tokens=0), "max_tokens")
    bad(req(user("x"), stop=[1]), "stop")
    bad(req(user("x"), response_format={"type": "json_object"}), "response_format")
    to_anthropic(req(user("x"), response_format={"type": "text"}), model=M)


def test_tools_and_tool_choice():
    no_params = {"type": "function", "function": {"name": "now"}}
    out = to_anthropic(req(user("x"), tools=[WEATHER, no_params]), model=M)
    assert out["tools"] == [
        {"name": "get_weather", "description": "Weather for a place",
         "input_schema": WEATHER["function"]["parameters"]},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}}]
    assert "tool_choice" not in out

    def choice(tc, **kw):
        return to_anthropic(req(user("x"), tools=[WEATHER], tool_choice=tc, **kw),
                            model=M).get("tool_choice")
    assert choice("auto") == {"type": "auto"}
    assert choice("none") == {"type": "none"}  # the Messages API has a "none" tool_choice
    assert choice("required") == {"type": "any"}
    assert choice({"type": "function", "function": {"name": "get_weather"}}) == \
        {"type": "tool", "name": "get_weather"}
    assert choice(None, parallel_tool_calls=False) == \
        {"type": "auto", "disable_parallel_tool_use": True}
    assert choice("required", parallel_tool_calls=False) == \
        {"type": "any", "disable_parallel_tool_use": True}
    assert choice("none", parallel_tool_calls=False) == {"type": "none"}
    # No tools: nothing to choose from, so tool_choice is not sent.
    assert "tool_choice" not in to_anthropic(req(user("x"), tool_choice="none"), model=M)
    bad(req(user("x"), tools=[WEATHER], tool_choice={"type": "allowed_tools"}), "tool_choice")
    bad(req(user("x"), tools=[{"type": "custom", "custom": {"name": "c"}}]), "tools[0]")


def test_tool_calls_and_tool_results():
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
             {"id": "call_2", "type": "function",
              "function": {"name": "get_weather", "arguments": ""}}]
    out = to_anthropic(req(
        user("Weather in Paris and Rome?"),
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2",
         "content": [{"type": "text", "text": "22C"}, {"type": "text", "text": " sunny"}]},
        user("And tomorrow?"), tools=[WEATHER]), model=M)
    assert out["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather",
             "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [  # consecutive tool messages: one user turn
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [
                {"type": "text", "text": "22C"}, {"type": "text", "text": " sunny"}]},
            {"type": "text", "text": "And tomorrow?"}]}]


def test_tool_results_come_first_in_their_user_turn():
    out = to_anthropic(req(
        user("x"), {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        user("(extra context)"), {"role": "tool", "tool_call_id": "t1", "content": "ok"}),
        model=M)
    assert out["messages"][1]["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]
    assert [b["type"] for b in out["messages"][2]["content"]] == ["tool_result", "text"]


def test_bad_tool_calls():
    def assistant(arguments):
        return {"role": "assistant", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": arguments}}]}
    e = bad(req(user("x"), assistant('{"a": 1')), "messages[1].tool_calls[0].function.arguments")
    assert "JSON" in e.message
    bad(req(user("x"), assistant("[1, 2]")), "messages[1].tool_calls[0].function.arguments")
    bad(req(user("x"), {"role": "tool", "content": "no id"}), "messages[1].tool_call_id")


# ---------------------------------------------------------------- reply: Anthropic -> OpenAI

def test_from_anthropic_text():
    out = from_anthropic(fake.MESSAGES["text"], model="client-name")
    assert out["object"] == "chat.completion" and out["model"] == "client-name"
    assert out["id"] == "msg_01TextReply" and isinstance(out["created"], int)
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "Hello! How can I help?",
                                           "refusal": None}}]
    assert out["usage"] == {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}
    ChatCompletion.model_validate(out)


def test_from_anthropic_tool_use():
    out = from_anthropic(fake.MESSAGES["tools"], model="m")
    msg = out["choices"][0]["message"]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["content"] == "Checking both cities."
    assert [(c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in msg["tool_calls"]] == [
        ("toolu_01SanFrancisco", "function", "get_weather",
         {"location": "San Francisco, CA", "unit": "fahrenheit"}),
        ("toolu_02Paris", "function", "get_weather", {"location": "Paris"})]
    parsed = ChatCompletion.model_validate(out)
    assert parsed.choices[0].message.tool_calls[1].function.name == "get_weather"
    only_tools = {**fake.MESSAGES["tools"], "content": fake.MESSAGES["tools"]["content"][1:]}
    assert from_anthropic(only_tools, model="m")["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize("stop_reason,finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("pause_turn", "stop"), ("refusal", "content_filter"),
    ("model_context_window_exceeded", "length")])
def test_finish_reasons(stop_reason, finish):
    assert FINISH[stop_reason] == finish
    out = from_anthropic({**fake.MESSAGES["text"], "stop_reason": stop_reason}, model="m")
    assert out["choices"][0]["finish_reason"] == finish
    ChatCompletion.model_validate(out)


def test_usage_counts_cached_prompt_tokens():
    resp = {**fake.MESSAGES["text"], "usage": {
        "input_tokens": 10, "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1000, "output_tokens": 5}}
    usage = from_anthropic(resp, model="m")["usage"]
    assert usage == {"prompt_tokens": 1110, "completion_tokens": 5, "total_tokens": 1115,
                     "prompt_tokens_details": {"cached_tokens": 1000}}
    ChatCompletion.model_validate(from_anthropic(resp, model="m"))


# ---------------------------------------------------------------- streaming

def events(transcript: bytes) -> list[bytes]:
    """The transcript cut into complete SSE events, as the cloud role's splitter cuts it."""
    out: list[bytes] = []
    splitter = EventSplitter(out.append)
    for i in range(0, len(transcript), 7):  # arbitrary wire chunking
        splitter.feed(transcript[i:i + 7])
    splitter.close()
    return out


def translate(transcript: bytes, include_usage: bool = True) -> tuple[StreamTranslator, list]:
    t = StreamTranslator(model="client-name", include_usage=include_usage)
    out = [b for ev in events(transcript) for b in t.feed(ev)]
    return t, out + t.finish()


def decoded(out: list[bytes]) -> list:
    assert all(b.startswith(b"data: ") and b.endswith(b"\n\n") for b in out)
    return [b[6:-2] if b == b"data: [DONE]\n\n" else json.loads(b[6:-2]) for b in out]


def test_stream_text():
    t, out = translate(fake.TEXT_SSE)
    chunks = decoded(out)
    assert chunks[-1] == b"[DONE]"
    *deltas, usage_chunk, _ = chunks
    assert {(c["id"], c["object"], c["model"], c["created"]) for c in deltas + [usage_chunk]} \
        == {("msg_01TextReply", "chat.completion.chunk", "client-name", t.created)}
    assert deltas[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all("role" not in c["choices"][0]["delta"] for c in deltas[1:])
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in deltas) == \
        "Hello! How can I help?"
    assert [c["choices"][0]["finish_reason"] for c in deltas][-1] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in deltas[:-1])
    assert all(c["usage"] is None for c in deltas)  # include_usage: null until the last
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == {
        "prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}
    assert t.usage == (25, 15) and t.complete


def test_stream_without_include_usage():
    t, out = translate(fake.TEXT_SSE, include_usage=False)
    chunks = decoded(out)
    assert chunks[-1] == b"[DONE]"
    assert all("usage" not in c and c["choices"] for c in chunks[:-1])
    assert t.usage == (25, 15)


def test_stream_two_parallel_tool_calls():
    t, out = translate(fake.TOOLS_SSE)
    chunks = decoded(out)[:-1]
    calls: dict[int, dict] = {}
    for c in chunks:
        for tc in (c["choices"] or [{}])[0].get("delta", {}).get("tool_calls") or []:
            slot = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
            if "id" in tc:
                assert tc["type"] == "function"
                slot["id"], slot["name"] = tc["id"], tc["function"]["name"]
            slot["arguments"] += tc["function"]["arguments"]
    # OpenAI indexes count tool calls (0, 1), not Anthropic's content blocks (1, 2).
    assert sorted(calls) == [0, 1]
    assert calls[0] == {"id": "toolu_01SanFrancisco", "name": "get_weather",
                        "arguments": '{"location": "San Francisco, CA", "unit": "fahrenheit"}'}
    assert calls[1] == {"id": "toolu_02Paris", "name": "get_weather",
                        "arguments": '{"location": "Paris"}'}
    # partial_json goes out as-is, split mid-key like upstream split it
    pieces = [tc["function"]["arguments"] for c in chunks for tc in
              ((c["choices"] or [{}])[0].get("delta", {}).get("tool_calls") or [])]
    assert '{"loca' in pieces and 'tion": "San Fra' in pieces
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "tool_calls" and finish.count("tool_calls") == 1
    assert chunks[-1]["usage"]["completion_tokens"] == 89
    assert t.usage == (472, 89)


def test_stream_error_event():
    t, out = translate(fake.ERROR_MIDSTREAM_SSE)
    assert t.errored and not t.complete
    *chunks, err = decoded(out)  # finish() adds nothing after an error
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Par"
    assert err == {"error": {"message": "Overloaded", "type": "api_error", "param": None,
                             "code": "upstream_overloaded"}}
    assert t.feed(b'event: ping\ndata: {"type": "ping"}') == []


def test_stream_event_parsing_is_lenient():
    t = StreamTranslator(model="m", include_usage=False)
    assert t.feed(b"event: ping\r\ndata: {\"type\": \"ping\"}") == []
    assert t.feed(b": a comment") == []
    assert t.feed(b'event: brand_new_event\ndata: {"type": "brand_new_event"}') == []
    start = b'event: message_start\r\ndata: {"type":"message_start","message":{"id":"msg_x",' \
            b'"usage":{"input_tokens":3,"output_tokens":1}}}'
    assert json.loads(t.feed(start)[0][6:])["id"] == "msg_x"
    # thinking blocks have no OpenAI counterpart: nothing goes out for them
    assert t.feed(b'data: {"type":"content_block_start","index":0,'
                  b'"content_block":{"type":"thinking","thinking":""}}') == []
    assert t.feed(b'data: {"type":"content_block_delta","index":0,'
                  b'"delta":{"type":"thinking_delta","thinking":"hmm"}}') == []
    out = t.feed(b'data: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},'
                 b'"usage":{"output_tokens":7}}')
    assert json.loads(out[0][6:])["choices"][0]["finish_reason"] == "length"
    assert t.feed(b'data: {"type":"message_stop"}') == []  # finish_reason already sent
    assert t.usage == (3, 7)


def test_stream_usage_with_cache_and_cumulative_deltas():
    t = StreamTranslator(model="m", include_usage=True)
    t.feed(b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_c",'
           b'"usage":{"input_tokens":4,"cache_creation_input_tokens":0,'
           b'"cache_read_input_tokens":2000,"output_tokens":1}}}')
    assert t.usage == (2004, 1)
    t.feed(b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
           b'"end_turn","stop_sequence":null},"usage":{"output_tokens":30}}')
    assert t.usage == (2004, 30)  # fields left out of message_delta keep their values
    t.feed(b'event: message_delta\ndata: {"type":"message_delta","delta":{},'
           b'"usage":{"input_tokens":6,"output_tokens":31}}')
    assert t.usage == (2006, 31)
    usage_chunk, done = t.finish()
    assert json.loads(usage_chunk[6:])["usage"] == {
        "prompt_tokens": 2006, "completion_tokens": 31, "total_tokens": 2037,
        "prompt_tokens_details": {"cached_tokens": 2000}}
    ChatCompletionChunk.model_validate(json.loads(usage_chunk[6:]))
    assert done == b"data: [DONE]\n\n"


@pytest.mark.parametrize("name", ["text", "tools"])
def test_streamed_chunks_parse_with_the_openai_sdk(name):
    _, out = translate(fake.TRANSCRIPTS[name])
    state = ChatCompletionStreamState(input_tools=[WEATHER])
    for c in decoded(out)[:-1]:
        state.handle_chunk(ChatCompletionChunk.model_validate(c))
    final = state.get_final_completion()
    expected = ChatCompletion.model_validate(from_anthropic(fake.MESSAGES[name], model="x"))
    assert final.choices[0].finish_reason == expected.choices[0].finish_reason
    assert final.choices[0].message.content == expected.choices[0].message.content
    got = [(c.id, c.function.name, json.loads(c.function.arguments))
           for c in final.choices[0].message.tool_calls or []]
    assert got == [(c.id, c.function.name, json.loads(c.function.arguments))
                   for c in expected.choices[0].message.tool_calls or []]
    assert final.usage.total_tokens == expected.usage.total_tokens


# ---------------------------------------------------------------- errors

def anthropic_error(type_: str, message: str = "boom") -> bytes:
    return json.dumps({"type": "error", "error": {"type": type_, "message": message},
                       "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}).encode()


@pytest.mark.parametrize("status,atype,out_status,otype,code", [
    (400, "invalid_request_error", 400, "invalid_request_error", "invalid_request"),
    (401, "authentication_error", 401, "authentication_error", "invalid_api_key"),
    (402, "billing_error", 402, "insufficient_quota", "insufficient_quota"),
    (403, "permission_error", 403, "permission_error", "permission_denied"),
    (404, "not_found_error", 404, "not_found_error", "not_found"),
    (413, "request_too_large", 413, "invalid_request_error", "request_too_large"),
    (429, "rate_limit_error", 429, "rate_limit_error", "rate_limit_exceeded"),
    (500, "api_error", 500, "api_error", "upstream_error"),
    (504, "timeout_error", 504, "timeout_error", "upstream_timeout"),
    (529, "overloaded_error", 503, "api_error", "upstream_overloaded"),
    (418, "teapot_error", 418, "invalid_request_error", "teapot_error"),
])
def test_map_error(status, atype, out_status, otype, code):
    got_status, body = map_error(status, anthropic_error(atype, f"{atype} happened"))
    assert got_status == out_status
    assert msgspec.json.decode(body) == {"error": {
        "message": f"{atype} happened", "type": otype, "param": None, "code": code}}


def test_map_error_non_anthropic_bodies():
    status, body = map_error(413, b"<html><body>413 Request Entity Too Large</body></html>")
    err = json.loads(body)["error"]
    assert status == 413 and err["type"] == "invalid_request_error" and "413" in err["message"]
    status, body = map_error(529, b"")
    assert status == 503 and json.loads(body)["error"]["type"] == "api_error"


# ---------------------------------------------------------------- over HTTP, with the fake

HEADERS = {"x-api-key": fake.API_KEY, "anthropic-version": ANTHROPIC_VERSION,
           "content-type": "application/json"}


async def test_fake_checks_key_version_and_required_fields(anthropic_server):
    base = str(anthropic_server.make_url("/v1"))
    body = to_anthropic(req(user("hi")), model=fake.MODEL)
    async with aiohttp.ClientSession() as s:
        async with s.post(base + "/messages", json=body,
                          headers={**HEADERS, "x-api-key": "wrong"}) as r:
            assert r.status == 401
            raw = await r.read()
            assert json.loads(raw)["error"]["type"] == "authentication_error"
            status, mapped = map_error(r.status, raw)
            assert status == 401 and json.loads(mapped)["error"]["code"] == "invalid_api_key"
        async with s.post(base + "/messages", json=body,
                          headers={k: v for k, v in HEADERS.items()
                                   if k != "anthropic-version"}) as r:
            assert r.status == 400
            assert "anthropic-version" in (await r.json())["error"]["message"]
        for field in ("max_tokens", "messages"):
            partial = {k: v for k, v in body.items() if k != field}
            async with s.post(base + "/messages", json=partial, headers=HEADERS) as r:
                err = await r.json()
                assert r.status == 400 and err["type"] == "error"
                assert err["error"] == {"type": "invalid_request_error",
                                        "message": f"{field}: Field required"}
        async with s.get(base + "/models", headers=HEADERS) as r:
            listing = await r.json()
            assert listing["has_more"] is False and listing["first_id"] == fake.MODEL
            assert {"type", "id", "display_name", "created_at"} <= set(listing["data"][0])
        async with s.get(base + "/models", headers={"x-api-key": "nope"}) as r:
            assert r.status == 401


async def test_fake_records_the_translated_request(anthropic_server):
    body = req({"role": "system", "content": "sys"}, user("tools"), tools=[WEATHER],
               tool_choice="required", stream=True, stop="###")
    async with aiohttp.ClientSession() as s:
        async with s.post(str(anthropic_server.make_url("/v1/messages")), headers=HEADERS,
                          data=msgspec.json.encode(to_anthropic(body, model=fake.MODEL))) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            raw = await r.read()
    assert raw == fake.TOOLS_SSE
    seen = anthropic_server.app[fake.KNOBS].requests[-1]
    assert seen["headers"]["anthropic-version"] == ANTHROPIC_VERSION
    assert seen["body"] == {
        "model": fake.MODEL, "max_tokens": DEFAULT_MAX_TOKENS, "system": "sys",
        "messages": [{"role": "user", "content": "tools"}], "stop_sequences": ["###"],
        "stream": True, "tool_choice": {"type": "any"},
        "tools": [{"name": "get_weather", "description": "Weather for a place",
                   "input_schema": WEATHER["function"]["parameters"]}]}


@pytest.fixture
async def openai_client(aiohttp_server, anthropic_server):
    """The openai SDK against a minimal translating proxy in front of the fake Anthropic
    (only a harness for the translation functions; the cloud role is tested elsewhere)."""
    upstream = str(anthropic_server.make_url("/v1/messages"))

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        payload = to_anthropic(body, model=fake.MODEL)
        async with aiohttp.ClientSession() as s, \
                s.post(upstream, data=msgspec.json.encode(payload), headers=HEADERS) as r:
            if r.status >= 400:
                status, err = map_error(r.status, await r.read())
                return web.Response(status=status, body=err, content_type="application/json")
            if not body.get("stream"):
                return web.json_response(from_anthropic(await r.json(), model=body["model"]))
            t = StreamTranslator(model=body["model"], include_usage=bool(
                (body.get("stream_options") or {}).get("include_usage")))
            out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await out.prepare(request)
            pending: list[bytes] = []
            splitter = EventSplitter(lambda ev: pending.extend(t.feed(ev)))
            async for chunk in r.content.iter_any():
                splitter.feed(chunk)
            splitter.close()
            await out.write(b"".join(pending + t.finish()))
            await out.write_eof()
            return out

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    proxy = await aiohttp_server(app)
    client = openai.AsyncOpenAI(api_key="k", base_url=str(proxy.make_url("/v1")), max_retries=0)
    yield client
    await client.close()


async def test_openai_sdk_end_to_end(openai_client):
    done = await openai_client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "tools"}], tools=[WEATHER])
    assert done.choices[0].finish_reason == "tool_calls"
    assert [c.id for c in done.choices[0].message.tool_calls] == \
        ["toolu_01SanFrancisco", "toolu_02Paris"]

    async with openai_client.chat.completions.stream(
            model="claude", messages=[{"role": "user", "content": "tools"}], tools=[WEATHER],
            stream_options={"include_usage": True}) as stream:
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"location": "San Francisco, CA", "unit": "fahrenheit"}, {"location": "Paris"}]
    assert final.choices[0].message.content == "Checking both cities."
    assert final.usage.prompt_tokens == 472 and final.usage.completion_tokens == 89

    with pytest.raises(openai.APIError, match="Overloaded"):
        stream = await openai_client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "error_midstream"}],
            stream=True)
        async for _ in stream:
            pass

    with pytest.raises(openai.InternalServerError) as e:
        await openai_client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "overloaded"}])
    assert e.value.status_code == 503 and e.value.code == "upstream_overloaded"
