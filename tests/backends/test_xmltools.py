"""The XML tool emulation's exact behaviour (eldric.wire.xmltools): the request it sends,
and every parsing edge case of whole and streamed replies, against the Chat Completions
chunk shapes (https://platform.openai.com/docs/api-reference/chat-streaming)."""

from __future__ import annotations

import json

import pytest

from eldric.errors import BadRequest
from eldric.wire import anthropic, xmltools
from eldric.wire.translate import chain
from eldric.wire.xmltools_scan import Call, Scanner

CALC = {"type": "function", "function": {"name": "calculate", "description": "math",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}}
NAMES = frozenset({"calculate"})
BLOCK = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "2+2"}}\n</tool_call>'


def body(**kw) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": "2+2?"}],
                       "tools": [CALC], **kw}).encode()


def scan(pieces: list[str], prefix: str = "") -> list:
    s = Scanner(NAMES, prefix)
    out = [p for piece in pieces for p in s.feed(piece)]
    return out + s.close()


def test_text_goes_out_at_once_and_a_block_is_held_until_it_closes():
    s = Scanner(NAMES)
    assert s.feed("Let me compute. ") == ["Let me compute. "]
    assert s.feed('<tool_call>{"name": "calculate", ') == []
    assert s.feed('"arguments": {"expression": "2+2"}}') == []
    assert s.feed("</tool_call> and the answer is 4") == [Call("calculate", '{"expression":"2+2"}')]
    assert s.close() == []  # text after a call is the model guessing its result: dropped


@pytest.mark.parametrize("cut", range(1, len(BLOCK)))
def test_a_block_split_anywhere_is_one_call(cut):
    assert scan(["hi ", BLOCK[:cut], BLOCK[cut:]]) == ["hi ", Call("calculate", '{"expression":"2+2"}')]


def test_a_partial_open_tag_at_a_chunk_end_is_held_back_then_released_as_text():
    s = Scanner(NAMES)
    assert s.feed("a <tool") == ["a "]
    assert s.feed("box> b") == ["<toolbox> b"]
    assert scan(["x <tool_ca"]) == ["x ", "<tool_ca"]  # the stream ended on it


@pytest.mark.parametrize("block", [
    "<tool_call>not json</tool_call>",
    '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',  # not offered
    '<tool_call>{"arguments": {}}</tool_call>',
    '<tool_call>{"name": "calculate", "arguments": [1]}</tool_call>',
    '<tool_call>{"name": "calculate", "arguments": "not an object"}</tool_call>',
])
def test_a_malformed_block_is_passed_as_text(block):
    assert "".join(scan(["a ", block, " b"])) == "a " + block + " b"


def test_arguments_as_a_json_string_and_two_calls_and_an_unclosed_whole_call():
    two = BLOCK + '\n<tool_call>{"name": "calculate", "arguments": "{\\"expression\\": \\"3\\"}"}</tool_call>'
    assert scan([two]) == [Call("calculate", '{"expression":"2+2"}'),
                           Call("calculate", '{"expression":"3"}')]
    # the model stopped at its end-of-turn token before the closing tag
    assert scan(['<tool_call>{"name": "calculate"}']) == [Call("calculate", "{}")]
    assert scan(['<tool_call>{"name": "calc']) == ['<tool_call>{"name": "calc']


@pytest.mark.parametrize("echoed", [True, False])
def test_a_prefill_is_found_whether_the_server_echoes_it_or_not(echoed):
    prefix = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "'
    rest = '2+2"}}\n</tool_call>'
    reply = prefix + rest if echoed else rest
    for size in (1, 5, len(reply)):
        pieces = [reply[i:i + size] for i in range(0, len(reply), size)]
        assert scan(pieces, prefix) == [Call("calculate", '{"expression":"2+2"}')]


def test_the_request_moves_tools_into_the_system_prompt_and_history_into_text():
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "calculate", "arguments": '{"expression": "2+2"}'}},
                {"id": "c2", "type": "function",
                 "function": {"name": "calculate", "arguments": '{"expression": "1"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "4"},
            {"role": "tool", "tool_call_id": "c2", "content": "1"}]
    x = xmltools.emulation(body(messages=msgs, tool_choice="auto", parallel_tool_calls=True,
                                top_k=3))
    sent = json.loads(x.request())
    assert "tools" not in sent and "tool_choice" not in sent and "parallel_tool_calls" not in sent
    assert sent["top_k"] == 3  # what the emulation does not know passes as it came
    system, user, assistant, results = sent["messages"]
    assert system["role"] == "system" and system["content"].startswith("Be brief.\n\n# Tools")
    assert json.dumps(CALC) in system["content"]
    assert assistant == {"role": "assistant", "content": BLOCK + '\n<tool_call>\n{"name": '
                         '"calculate", "arguments": {"expression": "1"}}\n</tool_call>'}
    assert results == {"role": "user", "content": "<tool_response>\n4\n</tool_response>\n"
                       "<tool_response>\n1\n</tool_response>"}


def test_tool_choice_none_required_and_named():
    none = json.loads(xmltools.emulation(body(tool_choice="none")).request())
    assert none["messages"] == [{"role": "user", "content": "2+2?"}]
    req = json.loads(xmltools.emulation(body(tool_choice="required"), prefill=True).request())
    assert "You must call one of these functions now." in req["messages"][0]["content"]
    assert req["messages"][-1] == {"role": "assistant", "content": '<tool_call>\n{"name": "'}
    named = json.loads(xmltools.emulation(body(tool_choice={
        "type": "function", "function": {"name": "calculate"}})).request())
    assert named["messages"][-1]["role"] == "user"  # no prefill where the backend has none
    assert xmltools.emulation(json.dumps({"model": "m", "messages": [
        {"role": "user", "content": "hi"}]}).encode()) is None  # nothing to emulate
    with pytest.raises(BadRequest):
        xmltools.emulation(body(tools="calculate"))


def completion(content) -> bytes:
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                       "model": "m", "choices": [{"index": 0, "message": {
                           "role": "assistant", "content": content},
                           "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 7,
                                 "total_tokens": 12}}).encode()


def test_a_whole_reply_gets_tool_calls_and_keeps_the_rest():
    out = json.loads(xmltools.emulation(body()).whole(completion("Sure. " + BLOCK)))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and out["usage"]["total_tokens"] == 12
    assert choice["message"]["content"] == "Sure. "
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "calculate", "arguments": '{"expression":"2+2"}'}
    plain = json.loads(xmltools.emulation(body()).whole(completion("4")))
    assert plain["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "4"},
                                   "finish_reason": "stop"}


def chunk(delta: dict, finish=None) -> bytes:
    return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                   "model": "m", "choices": [{"index": 0, "delta": delta,
                                                              "finish_reason": finish}]}).encode()


def events(out: bytes) -> list:
    return [e[6:] if e == b"data: [DONE]" else json.loads(e[6:])
            for e in out.split(b"\n\n") if e]


def test_a_stream_gets_tool_call_deltas_and_finish_reason_tool_calls():
    x = xmltools.emulation(body(stream=True))
    out = x.feed(chunk({"role": "assistant", "content": ""}))
    for piece in ("OK ", BLOCK[:15], BLOCK[15:], " junk"):
        out += x.feed(chunk({"content": piece}))
    out += x.feed(chunk({}, "stop")) + x.feed(b"data: [DONE]") + x.close()
    evs = events(out)
    assert evs[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert evs[1]["choices"][0]["delta"] == {"content": "OK "}
    call = evs[2]["choices"][0]["delta"]["tool_calls"][0]
    assert (call["index"], call["function"]["name"]) == (0, "calculate")
    assert json.loads(call["function"]["arguments"]) == {"expression": "2+2"}
    assert evs[3]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert evs[4] == b"[DONE]" and len(evs) == 5


def test_a_stream_cut_before_its_finish_releases_the_text_it_held():
    x = xmltools.emulation(body(stream=True))
    assert x.feed(chunk({"content": "a <tool"})) .count(b"data:") == 1
    assert events(x.close())[0]["choices"][0]["delta"] == {"content": "<tool"}
    assert b'"code":"upstream_error"' in x.cut(502, "gone", "upstream_error")


def test_chain_composes_a_client_api_with_the_emulation():
    msg = json.dumps({"model": "m", "max_tokens": 50, "stream": True,
                      "messages": [{"role": "user", "content": "2+2?"}],
                      "tools": [{"name": "calculate", "description": "math",
                                 "input_schema": CALC["function"]["parameters"]}]}).encode()
    outer = anthropic.messages(msg)
    t = chain(outer, xmltools.emulation(outer.request()))
    assert "tools" not in json.loads(t.request()) and t.media_type == "text/event-stream"
    out = t.feed(chunk({"role": "assistant", "content": ""})) + t.feed(chunk({"content": BLOCK}))
    out += t.feed(chunk({}, "stop")) + t.feed(b"data: [DONE]") + t.close()
    assert b'"type":"tool_use"' in out and b'"name":"calculate"' in out
    assert b'"stop_reason":"tool_use"' in out
    assert chain(outer, None) is outer


def test_the_embedded_backend_emulates_only_where_the_models_template_has_no_tools(tmp_path):
    from eldric.roles.worker.embedded import default_model, native_tools
    from tests.models.gguf_file import gguf_bytes, string

    def model(template: str) -> str:
        path = tmp_path / f"m{len(template)}.gguf"
        path.write_bytes(gguf_bytes({"general.architecture": string("llama"),
                                     "tokenizer.chat_template": string(template)}))
        return str(path)

    hermes = "{%- if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>{% endif %}"
    assert native_tools(model(hermes)) is True
    assert native_tools(model("{% for m in messages %}{{ m.content }}{% endfor %}")) is False
    assert native_tools(str(tmp_path / "missing.gguf")) is False
    if default_model() is not None:  # SmolLM2's own template: no tools
        assert native_tools(default_model()) is False
