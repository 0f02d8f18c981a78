"""The pure translations of KServe/Triton v2 generate and TGI's native generate, against
the transcripts their documentation shows (module docstrings of eldric/wire/native/
kserve.py and tgi.py cite them)."""

from __future__ import annotations

import json

import pytest

from eldric.backends.egress import Context
from eldric.errors import BadRequest
from eldric.wire.native import kserve, tgi
from eldric.wire.native.refused import Refused

CHAT = {"model": "mymodel", "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "client input"}]}
PROMPT = "System: Be brief.\nUser: client input\nAssistant:"


def events(out: list[bytes]) -> list:
    """The SSE events as decoded JSON ([DONE] as the string)."""
    got = []
    for e in out:
        assert e.startswith(b"data: ") and e.endswith(b"\n\n")
        data = e[6:-2]
        got.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return got


def text_of(evs: list) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in evs
                   if isinstance(e, dict) and e.get("choices"))


# -- KServe / Triton v2 generate ------------------------------------------------------

def test_kserve_request_is_the_documented_generate_request():
    eg = kserve.chat({**CHAT, "temperature": 0, "max_tokens": 7, "stop": "\n"},
                     Context(model="mymodel"))
    out = eg.outbound()
    assert out.path == "/v2/models/mymodel/generate" and out.method == "POST"
    assert json.loads(out.body) == {"text_input": PROMPT, "parameters": {
        "max_tokens": 7, "temperature": 0, "stop": "\n"}}


def test_kserve_stream_request_version_inputs_and_sampling_as_tensors():
    ctx = Context(model="ensemble", options={
        "version": "2", "sampling_at": "inputs",
        "inputs": {"bad_words": "", "stop_words": ""}})
    out = kserve.chat({**CHAT, "stream": True, "max_tokens": 20}, ctx).outbound()
    assert out.path == "/v2/models/ensemble/versions/2/generate_stream"
    assert out.framing == "sse"
    assert json.loads(out.body) == {"text_input": PROMPT, "max_tokens": 20, "stream": True,
                                    "bad_words": "", "stop_words": ""}


def test_kserve_whole_reply_documented_example():
    eg = kserve.chat(CHAT, Context(model="mymodel"))
    body = json.loads(eg.whole(b'{"model_name":"mymodel","model_version":"1",'
                               b'"text_output":"model output"}'))
    assert body["object"] == "chat.completion" and body["model"] == "mymodel"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "model output"}
    assert body["choices"][0]["finish_reason"] == "stop"


def test_kserve_whole_reply_with_vllm_outputs_and_echoed_prompt():
    eg = kserve.chat(CHAT, Context(model="m"))
    raw = json.dumps({"model_name": "m", "model_version": "1",
                      "text_output": PROMPT + " Hi there", "finish_reason": ["length"],
                      "num_input_tokens": 9, "num_output_tokens": [3]}).encode()
    body = json.loads(eg.whole(raw))
    assert body["choices"][0]["message"]["content"] == "Hi there"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def test_kserve_whole_reply_without_text_output_is_unreadable():
    eg = kserve.chat(CHAT, Context(model="m"))
    with pytest.raises(ValueError):
        eg.whole(b'{"model_name":"m"}')
    with pytest.raises(ValueError):
        eg.whole(b"not json")


def test_kserve_stream_without_finish_output_ends_with_the_reply():
    eg = kserve.chat({**CHAT, "stream": True}, Context(model="m"))
    assert not eg.done and eg.ends_with_body  # no end marker: the reply's end is the end
    out = []
    for piece in ("Hel", "lo", "!"):
        out += eg.feed(b'data: {"model_name":"m","model_version":"1","text_output":'
                       + json.dumps(piece).encode() + b"}")
    out += eg.finish()
    evs = events(out)
    assert text_of(evs) == "Hello!"
    assert evs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert evs[-2]["choices"][0]["finish_reason"] == "stop" and evs[-1] == "[DONE]"


def test_kserve_stream_with_finish_reason_and_usage():
    ctx = Context(model="m", options={"inputs": {"return_finish_reason": True,
                                                 "return_num_output_tokens": True}})
    eg = kserve.chat({**CHAT, "stream": True, "stream_options": {"include_usage": True}}, ctx)
    assert not eg.done
    out = eg.feed(b'data: {"text_output":"A","finish_reason":[""],"num_output_tokens":[1]}')
    assert not eg.done
    out += eg.feed(b'data: {"text_output":"B","finish_reason":["stop"],'
                   b'"num_input_tokens":5,"num_output_tokens":[1]}')
    assert eg.done
    out += eg.finish()  # nothing more
    evs = events(out)
    assert text_of(evs) == "AB" and evs[-1] == "[DONE]"
    assert evs[-2]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert eg.usage == (5, 2)


def test_kserve_stream_cut_before_the_finish_output_is_not_done():
    ctx = Context(model="m", options={"inputs": {"return_finish_reason": True}})
    eg = kserve.chat({**CHAT, "stream": True}, ctx)
    eg.feed(b'data: {"text_output":"A"}')
    assert not eg.done and eg.finish() == []  # the call sends the cut's error event


def test_kserve_error_event_mid_stream():
    eg = kserve.chat({**CHAT, "stream": True}, Context(model="m"))
    eg.feed(b'data: {"text_output":"A"}')
    out = eg.feed(b'data: {"error":"Error generating stream: CUDA out of memory"}')
    assert eg.done
    (err,) = events(out)
    assert "CUDA out of memory" in err["error"]["message"]
    assert eg.finish() == []


def test_kserve_error_reply_keeps_status_in_openai_shape():
    eg = kserve.chat(CHAT, Context(model="m"))
    status, body = eg.error(400, b'{"error":"Request for unknown model: \'m\' is not found"}')
    assert status == 400
    assert "unknown model" in json.loads(body)["error"]["message"]


def test_kserve_refuses_what_generate_cannot_take():
    with pytest.raises(BadRequest) as e:
        kserve.chat({**CHAT, "stop": ["a", "b"]}, Context(model="m")).outbound()
    assert e.value.param == "stop"
    img = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}
    with pytest.raises(BadRequest) as e:
        kserve.chat(img, Context(model="m"))
    assert e.value.code == "vision_unsupported"
    tools = {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}]}
    with pytest.raises(BadRequest) as e:
        kserve.chat(tools, Context(model="m"))
    assert e.value.param == "tools"


def test_kserve_model_lists():
    assert kserve.models("triton").path == "/v2/repository/index"
    assert kserve.models("triton").method == "POST"
    assert kserve.models("kserve").path == "/v2/models"
    assert kserve.parse_models(b'[{"name":"a","version":"1","state":"READY"},'
                               b'{"name":"b","state":"UNAVAILABLE","reason":"x"}]') == ["a"]
    assert kserve.parse_models(b'{"models":["x","y"]}') == ["x", "y"]
    with pytest.raises(ValueError):
        kserve.parse_models(b'{"nope":1}')


# -- TGI native generate --------------------------------------------------------------

def test_tgi_request_is_the_documented_generate_request():
    eg = tgi.chat({**CHAT, "max_tokens": 20, "temperature": 0.5, "top_p": 0.95,
                   "stop": ["photographer"], "seed": 42}, Context(model="bigscience/bloom"))
    out = eg.outbound()
    assert out.path == "/generate"
    assert json.loads(out.body) == {"inputs": PROMPT, "parameters": {
        "details": True, "max_new_tokens": 20, "temperature": 0.5, "do_sample": True,
        "top_p": 0.95, "stop": ["photographer"], "seed": 42}}


def test_tgi_temperature_zero_is_greedy_and_top_p_one_left_out():
    out = tgi.chat({**CHAT, "stream": True, "temperature": 0, "top_p": 1},
                   Context(model="m")).outbound()
    assert out.path == "/generate_stream"
    assert json.loads(out.body)["parameters"] == {"details": True, "do_sample": False}


def test_tgi_temperature_zero_stays_greedy_with_top_p_and_top_k():
    """TGI samples whenever a warper is set (tokens.py: ``sampling = do_sample or
    has_warpers``, top_p < 1 and top_k != 0 are warpers), do_sample false or not: a
    greedy request sends neither."""
    out = tgi.chat({**CHAT, "temperature": 0, "top_p": 0.9, "top_k": 40},
                   Context(model="m")).outbound()
    assert json.loads(out.body)["parameters"] == {"details": True, "do_sample": False}


def test_tgi_seed_zero_is_a_seed():
    """TGI's seed is a u64 (0 a valid one); OpenAI's seed 0 asks for determinism too."""
    out = tgi.chat({**CHAT, "seed": 0}, Context(model="m")).outbound()
    assert json.loads(out.body)["parameters"]["seed"] == 0


def test_tgi_whole_reply():
    eg = tgi.chat(CHAT, Context(model="m"))
    raw = json.dumps({"generated_text": " Rayleigh scattering", "details": {
        "finish_reason": "eos_token", "generated_tokens": 4, "seed": None,
        "prefill": [], "tokens": []}}).encode()
    body = json.loads(eg.whole(raw))
    assert body["choices"][0]["message"]["content"] == " Rayleigh scattering"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 4
    assert json.loads(eg.whole(b'[{"generated_text":"x","details":{"finish_reason":'
                               b'"length","generated_tokens":1,"prefill":[],"tokens":[]}}]')
                      )["choices"][0]["finish_reason"] == "length"


TGI_STREAM = [
    b'data:{"index":1,"token":{"id":2044,"text":"To","logprob":-1.13,"special":false},'
    b'"generated_text":null,"details":null}',
    b'data:{"index":2,"token":{"id":717,"text":" make","logprob":-0.01,"special":false},'
    b'"generated_text":null,"details":null}',
    b'data:{"index":3,"token":{"id":2,"text":"</s>","logprob":-0.2,"special":true},'
    b'"generated_text":"To make","details":{"finish_reason":"eos_token",'
    b'"generated_tokens":3,"input_length":11,"seed":null}}',
]


def test_tgi_stream_token_events_and_last_event():
    eg = tgi.chat({**CHAT, "stream": True, "stream_options": {"include_usage": True}},
                  Context(model="m"))
    out = []
    for f in TGI_STREAM[:2]:
        out += eg.feed(f)
        assert not eg.done
    out += eg.feed(TGI_STREAM[2])
    assert eg.done and eg.usage == (11, 3)
    out += eg.finish()
    evs = events(out)
    assert text_of(evs) == "To make"  # the special token is not text
    assert evs[-3]["choices"][0]["finish_reason"] == "stop"
    assert evs[-2]["usage"]["total_tokens"] == 14 and evs[-1] == "[DONE]"


def test_tgi_stream_cut_and_error_event():
    eg = tgi.chat({**CHAT, "stream": True}, Context(model="m"))
    eg.feed(TGI_STREAM[0])
    assert not eg.done and eg.finish() == []
    eg = tgi.chat({**CHAT, "stream": True}, Context(model="m"))
    eg.feed(TGI_STREAM[0])
    (err,) = events(eg.feed(b'data:{"error":"Request failed during generation",'
                            b'"error_type":"generation"}'))
    assert eg.done and err["error"]["message"].endswith("Request failed during generation")
    assert eg.finish() == []


@pytest.mark.parametrize(("status", "mapped"), [(422, 400), (424, 502), (429, 429), (500, 500)])
def test_tgi_error_statuses(status, mapped):
    eg = tgi.chat(CHAT, Context(model="m"))
    got, body = eg.error(status, b'{"error":"Model is overloaded","error_type":"overloaded"}')
    assert got == mapped
    err = json.loads(body)["error"]
    assert err["message"] == "Model is overloaded" and err["code"] == "overloaded"


def test_tgi_info_is_the_model_list():
    assert tgi.INFO.path == "/info" and tgi.INFO.method == "GET"
    info = {"model_id": "bigscience/blomm-560m", "max_concurrent_requests": 128,
            "max_best_of": 2, "max_stop_sequences": 4, "max_input_tokens": 1024,
            "max_total_tokens": 2048, "validation_workers": 2, "max_client_batch_size": 32,
            "router": "text-generation-router", "version": "0.5.0"}
    assert tgi.parse_models(json.dumps(info).encode()) == ["bigscience/blomm-560m"]
    with pytest.raises(ValueError):
        tgi.parse_models(b"{}")


@pytest.mark.parametrize(("kind", "status"), [("overloaded", 429), ("validation", 400),
                                              ("generation", 502)])
def test_tgi_error_as_the_streams_first_event_is_the_error_reply(kind, status):
    """TGI answers generate_stream with 200 whatever happens: an error before any token
    is the reply it stands for (the call fails over on 429/5xx, a 400 is the client's)."""
    eg = tgi.chat({**CHAT, "stream": True}, Context(model="m"))
    with pytest.raises(Refused) as e:
        eg.feed(b'data:{"error":"Input validation error: `inputs` tokens + `max_new_tokens` '
                b'must be <= 2048","error_type":"' + kind.encode() + b'"}')
    assert e.value.status == status
    assert json.loads(e.value.body)["error"]["code"] == kind


@pytest.mark.parametrize(("kind", "options", "named"), [
    ("kserve", {"inputs": ["exclude_input_in_output"]}, "option inputs"),
    ("kserve", {"parameters": "stream"}, "option parameters"),
    ("kserve", {"sampling_at": "tensors"}, "option sampling_at"),
    ("kserve", {"server": "mlserver"}, "option server"),
    ("tgi-native", {"parameters": ["truncate"]}, "option parameters")])
def test_options_of_the_wrong_type_are_a_config_error(kind, options, named):
    """Found where the backend is configured (the cloud's make_backend, the worker's
    build turn it into a ConfigError), not a traceback (500) at each request."""
    from eldric.backends.table import adapters
    with pytest.raises(ValueError, match=named):
        adapters()[kind].check(options, None)
    adapters()[kind].check({}, None)  # nothing given is fine
