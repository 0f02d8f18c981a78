"""The template adapter's pure translation: placeholders, paths into the reply, streams,
and every worked example of docs/backends.md against the request and reply its server's
documentation shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eldric.backends.egress import Context
from eldric.errors import BadRequest, EldricError
from eldric.wire.native import template
from eldric.wire.native.refused import Refused

DOCS = Path(__file__).resolve().parents[2] / "docs" / "backends.md"
CHAT = {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Hi"},
                                   {"role": "assistant", "content": "Hello."},
                                   {"role": "user", "content": "Why is the sky blue?"}],
        "max_tokens": 20, "temperature": 0.5}
PROMPT = ("System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Why is the sky blue?\n"
          "Assistant:")


def examples() -> dict[str, dict]:
    """The docs' worked examples by name (``<!-- example: NAME -->`` then a json block)."""
    text = DOCS.read_text()
    return {m.group(1): json.loads(m.group(2)) for m in re.finditer(
        r"<!-- example: ([\w-]+) -->\n```json\n(.*?)\n```", text, re.S)}


def events(out: list[bytes]) -> list:
    return [("[DONE]" if e[6:-2] == b"[DONE]" else json.loads(e[6:-2])) for e in out]


def text_of(evs: list) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in evs
                   if isinstance(e, dict) and e.get("choices"))


def egress(options: dict, body: dict | None = None, model: str = "m"):
    return template.chat(body or CHAT, Context(model=model, options=options))


def test_placeholders_whole_values_parts_and_absent_ones():
    opts = {"path": "/p/{model}", "response": "out", "request": {
        "p": "{{prompt}}", "n": "{{max_tokens}}", "t": "{{temperature}}",
        "k": "{{top_k}}", "msgs": "{{messages}}", "text": "Q: {{last_user}} ({{max_tokens}})",
        "list": ["{{seed}}", "{{system}}"], "s": "{{stream}}", "fixed": 3}}
    out = egress(opts, model="a/b").outbound()
    assert out.path == "/p/a%2Fb" and out.framing == "json"
    assert json.loads(out.body) == {
        "p": PROMPT, "n": 20, "t": 0.5, "text": "Q: Why is the sky blue? (20)",
        "msgs": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Hello."},
                 {"role": "user", "content": "Why is the sky blue?"}],
        "list": [None, "Be brief."], "s": False, "fixed": 3}  # top_k absent: key dropped


def test_paths_into_the_reply():
    assert template.at({"a": [{"b": "x"}]}, "a.0.b") == (True, "x")
    assert template.at({"a": [1, 2]}, "a.-1") == (True, 2)
    assert template.at({"a": ['{"g": "y"}']}, "a.0.g") == (True, "y")  # JSON in a string
    assert template.at({"a": []}, "a.0") == (False, None)
    assert template.at({"a": "not json"}, "a.b") == (False, None)
    assert template.at("whole", ".") == (True, "whole")


def test_whole_reply_with_finish_and_usage():
    opts = {"path": "/x", "request": {"p": "{{prompt}}"}, "response": "r.text",
            "finish": "r.why", "usage": {"prompt_tokens": "u.in", "completion_tokens": "u.out"}}
    body = json.loads(egress(opts).whole(
        b'{"r": {"text": "Rayleigh.", "why": "length"}, "u": {"in": 12, "out": 3}}'))
    assert body["choices"][0]["message"]["content"] == "Rayleigh."
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def test_reply_without_text_at_the_path_is_unreadable():
    eg = egress({"path": "/x", "request": {}, "response": "a.b"})
    with pytest.raises(ValueError):
        eg.whole(b'{"a": {}}')
    with pytest.raises(ValueError):
        eg.whole(b"plain text")


def test_plain_text_reply_with_dot():
    eg = egress({"path": "/x", "request": {}, "response": "."})
    assert json.loads(eg.whole(b"It scatters."))["choices"][0]["message"]["content"] \
        == "It scatters."


def test_stream_without_stream_option_is_the_whole_reply_once():
    eg = egress({"path": "/x", "request": {"p": "{{prompt}}", "s": "{{stream}}"},
                 "response": "out"}, {**CHAT, "stream": True})
    out = eg.outbound()
    assert out.framing == "json" and json.loads(out.body)["s"] is False
    assert not eg.done
    evs = events(eg.feed(b'{"out": "Rayleigh scattering."}'))
    assert eg.done and text_of(evs) == "Rayleigh scattering." and evs[-1] == "[DONE]"
    assert eg.finish() == []


def test_sse_stream_with_end_event_and_a_cut():
    opts = {"path": "/x", "request": {"p": "{{prompt}}"}, "response": "out",
            "stream": {"path": "/x/stream", "framing": "sse", "text": "token", "end": "[DONE]"}}
    eg = egress(opts, {**CHAT, "stream": True})
    out = eg.outbound()
    assert out.path == "/x/stream" and out.framing == "sse"
    got = eg.feed(b'data: {"token": "Ray"}') + eg.feed(b'data: {"token": "leigh"}')
    assert not eg.done
    got += eg.feed(b"data: [DONE]")
    assert eg.done and text_of(events(got)) == "Rayleigh"
    cut = egress(opts, {**CHAT, "stream": True})
    cut.feed(b'data: {"token": "Ray"}')
    assert not cut.done and cut.finish() == []  # the call sends the cut's error event


def test_ndjson_stream_with_done_path_and_error():
    opts = {"path": "/x", "request": {}, "response": "out",
            "stream": {"framing": "ndjson", "text": "response", "done": "done"}}
    eg = egress(opts, {**CHAT, "stream": True})
    got = eg.feed(b'{"response": "A", "done": false}') + eg.feed(b'{"response": "B", "done": true}')
    assert eg.done and text_of(events(got)) == "AB"
    eg = egress(opts, {**CHAT, "stream": True})
    eg.feed(b'{"response": "A", "done": false}')
    (err,) = events(eg.feed(b'{"error": "CUDA out of memory"}'))
    assert eg.done and "CUDA out of memory" in err["error"]["message"]
    eg = egress(opts, {**CHAT, "stream": True})
    with pytest.raises(Refused) as e:  # before any content: the error reply it stands for
        eg.feed(b'{"error": "CUDA out of memory"}')
    assert e.value.status == 502


@pytest.mark.parametrize("opts", [
    {"request": {}, "response": "a"},  # no path
    {"path": "/x", "response": "a"},  # no request
    {"path": "/x", "request": {}},  # no response
    {"path": "/x", "request": {"p": "{{promt}}"}, "response": "a"},  # unknown placeholder
    {"path": "/x", "request": {}, "response": "a", "stream": {"framing": "ws", "text": "t"}},
])
def test_misconfigured_template_is_the_operators_500(opts):
    with pytest.raises(EldricError) as e:
        egress(opts)
    assert e.value.status == 500 and e.value.code == "backend_misconfigured"


def test_images_are_refused():
    img = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}
    with pytest.raises(BadRequest) as e:
        egress({"path": "/x", "request": {}, "response": "a"}, img)
    assert e.value.code == "vision_unsupported"


# -- the worked examples ----------------------------------------------------------------

def test_docs_have_every_worked_example():
    assert set(examples()) == {"torchserve", "tf-serving", "mlserver", "azure-ml-score",
                               "custom", "custom-stream"}
    for ex in examples().values():
        assert ex["type"] == "template"
        template.check(ex["options"])


EXPECTED = {
    # name: (model, expected request body, the server's documented reply, the text)
    "torchserve": ("llama", {"prompt": PROMPT, "max_new_tokens": 20, "temperature": 0.5},
                   {"generated_text": " Rayleigh scattering."}, " Rayleigh scattering."),
    "tf-serving": ("gpt2", {"signature_name": "serving_default", "instances": [PROMPT]},
                   {"predictions": ["Rayleigh scattering."]}, "Rayleigh scattering."),
    "mlserver": ("text-gen", {"inputs": [{"name": "args", "shape": [1], "datatype": "BYTES",
                                          "data": [PROMPT]}]},
                 {"model_name": "text-gen_1", "model_version": "1", "id": "121ff5f4",
                  "parameters": {}, "outputs": [{
                      "name": "output", "shape": [1, 1], "datatype": "BYTES",
                      "parameters": {"content_type": "hg_jsonlist"},
                      "data": [json.dumps({"generated_text": PROMPT + " Rayleigh."})]}]},
                 "Rayleigh."),
    "azure-ml-score": ("llama-2-7b-chat", {"input_data": {"input_string": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Why is the sky blue?"}],
        "parameters": {"max_new_tokens": 20, "temperature": 0.5}}},
        {"output": "Rayleigh scattering."}, "Rayleigh scattering."),
    "custom": ("lcm", {"text": "Why is the sky blue?", "max_len": 20},
               {"output": {"text": "Scattering."}}, "Scattering."),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_worked_example(name):
    ex = examples()[name]
    model, want, reply, text = EXPECTED[name]
    eg = egress(ex["options"], model=model)
    out = eg.outbound()
    assert out.method == "POST"
    assert json.loads(out.body) == want
    body = json.loads(eg.whole(json.dumps(reply).encode()))
    assert body["choices"][0]["message"]["content"] == text
