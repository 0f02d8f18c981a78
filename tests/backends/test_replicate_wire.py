"""Replicate translation, pure: OpenAI chat bodies to predictions and the documented
prediction objects and stream events back (https://replicate.com/docs/topics/predictions/
create-a-prediction, /streaming)."""

from __future__ import annotations

import json

import pytest

from eldric.backends.egress import Context
from eldric.errors import BadRequest
from eldric.wire.native import replicate

MODEL = "meta/meta-llama-3-8b-instruct"
CTX = Context(model=MODEL)
URLS = {"get": "https://api.replicate.com/v1/predictions/abc",
        "cancel": "https://api.replicate.com/v1/predictions/abc/cancel",
        "stream": "https://stream.replicate.com/v1/files/abc"}


def _pred(status: str, **more) -> bytes:
    return json.dumps({"id": "abc", "model": MODEL, "version": "v1", "input": {},
                       "status": status, "urls": URLS, **more}).encode()


def _chat(**body) -> dict:
    return {"messages": [{"role": "user", "content": "Tell me a story"}], **body}


def test_create_by_model_with_input_fields_and_wait():
    e = replicate.ChatEgress(_chat(max_tokens=64, temperature=0.5, top_p=0.9, seed=3,
                                   stop=["\n\n", "END"]), CTX)
    out = e.outbound()
    assert out.method == "POST" and out.path == f"/v1/models/{MODEL}/predictions"
    assert out.headers["Prefer"] == "wait=60"
    assert json.loads(out.body) == {"input": {
        "prompt": "Tell me a story", "max_tokens": 64, "temperature": 0.5, "top_p": 0.9,
        "seed": 3, "stop_sequences": "\n\n,END"}}


def test_create_streamed_by_version_and_deployment_and_renamed_inputs():
    e = replicate.ChatEgress(_chat(stream=True, max_tokens=9),
                             Context(model=f"{MODEL}:v123",
                                     options={"names": {"max_tokens": "max_new_tokens"},
                                              "input": {"prompt_template": "{prompt}"}}))
    out = e.outbound()
    assert out.path == "/v1/predictions" and "Prefer" not in out.headers
    assert json.loads(out.body) == {"version": "v123", "stream": True, "input": {
        "prompt": "Tell me a story", "max_new_tokens": 9, "prompt_template": "{prompt}"}}
    e = replicate.ChatEgress(_chat(), Context(model="x", options={"deployment": "acme/llm",
                                                                   "wait": 5}))
    assert e.outbound().path == "/v1/deployments/acme/llm/predictions"
    assert e.outbound().headers["Prefer"] == "wait=5"


def test_a_conversation_goes_as_a_transcript_and_system_apart():
    e = replicate.ChatEgress({"messages": [
        {"role": "system", "content": "be\nbrief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}]}, CTX)
    sent = json.loads(e.outbound().body)["input"]
    assert sent["system_prompt"] == "be\nbrief"
    assert sent["prompt"] == "User: hi\nAssistant: hello\nUser: bye\nAssistant:"


@pytest.mark.parametrize("body,param", [
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}, "messages"),
    (_chat(tools=[{"type": "function", "function": {"name": "f"}}]), "tools"),
    ({"messages": "no"}, "messages")])
def test_what_it_cannot_take_is_a_400(body, param):
    with pytest.raises(BadRequest) as info:
        replicate.ChatEgress(body, CTX)
    assert info.value.param == param


def test_a_model_name_must_be_owner_slash_name():
    with pytest.raises(BadRequest):
        replicate.ChatEgress(_chat(), Context(model="llama"))


def test_whole_succeeded_joins_output_and_reads_metrics():
    e = replicate.ChatEgress(_chat(), CTX)
    raw = _pred("succeeded", output=["Once", " upon", " a time"],
                metrics={"predict_time": 1.2, "input_token_count": 5, "output_token_count": 3})
    assert e.follow(raw) is None  # done: nothing to ask again
    out = json.loads(e.whole(raw))
    assert out["choices"][0]["message"]["content"] == "Once upon a time"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_whole_pending_is_polled_at_urls_get():
    e = replicate.ChatEgress(_chat(), CTX)
    nxt = e.follow(_pred("processing"))
    assert nxt is not None and nxt.method == "GET" and nxt.url == URLS["get"]
    assert nxt.framing == "json"
    with pytest.raises(ValueError):
        e.whole(_pred("processing"))


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_failed_prediction_is_a_value_error(status):
    e = replicate.ChatEgress(_chat(), CTX)
    with pytest.raises(ValueError, match=status):
        e.whole(_pred(status, error="boom"))
    with pytest.raises(ValueError):
        e.follow(_pred(status, error="boom"))


def test_stream_follows_urls_stream_and_translates_events():
    e = replicate.ChatEgress(_chat(stream=True, stream_options={"include_usage": True}), CTX)
    nxt = e.follow(_pred("starting"))
    assert nxt.method == "GET" and nxt.url == URLS["stream"]
    assert nxt.headers["Accept"] == "text/event-stream" and nxt.framing == "sse"
    frames = [b"event: output\nid: 1690212292:0\ndata: Once upon",
              b": a comment",
              b"event: logs\nid: 1690212292:1\ndata: loading weights",
              b"event: output\nid: 1690212292:2\ndata:  a time\ndata: ",
              b"event: done\nid: 1690212292:3\ndata: {}"]
    out = []
    for f in frames:
        out += e.feed(f)
    assert e.done
    out += e.finish()
    events = [json.loads(x[6:]) if x != b"data: [DONE]\n\n" else "[DONE]" for x in out]
    text = "".join(ev["choices"][0]["delta"].get("content") or ""
                   for ev in events if isinstance(ev, dict) and ev["choices"])
    assert text == "Once upon a time\n"
    assert [ev["choices"][0]["finish_reason"] for ev in events
            if isinstance(ev, dict) and ev["choices"]][-1] == "stop"
    assert events[-2]["choices"] == [] and events[-1] == "[DONE]"


@pytest.mark.parametrize("frame,message", [
    (b'event: error\nid: 1:3\ndata: {"detail": "CUDA out of memory"}', "CUDA out of memory"),
    (b"event: error\nid: 1:3\ndata: An unexpected error occurred", "An unexpected error"),
    (b'event: done\nid: 1:3\ndata: {"reason": "canceled"}', "canceled")])
def test_stream_error_and_canceled_end_with_one_error_event(frame, message):
    e = replicate.ChatEgress(_chat(stream=True), CTX)
    e.follow(_pred("starting"))
    e.feed(b"event: output\nid: 1:0\ndata: Hi")
    out = e.feed(frame)
    assert e.done and len(out) == 1
    err = json.loads(out[0][6:])["error"]
    assert message in err["message"] and err["code"] == "upstream_error"
    assert e.feed(b"event: output\nid: 1:4\ndata: more") == [] and e.finish() == []


def test_a_stream_of_a_model_that_has_none_is_a_value_error():
    e = replicate.ChatEgress(_chat(stream=True), CTX)
    with pytest.raises(ValueError, match="does not stream"):
        e.follow(json.dumps({"id": "a", "status": "starting", "urls": {"get": "g"}}).encode())


def test_cancel_uses_urls_cancel_until_done():
    e = replicate.ChatEgress(_chat(stream=True), CTX)
    assert e.cancel() is None  # nothing created yet
    c = e.cancel(_pred("starting"))
    assert c.method == "POST" and c.url == URLS["cancel"]
    e.feed(b"event: done\nid: 1:1\ndata: {}")
    assert e.cancel() is None  # finished: nothing to cancel


@pytest.mark.parametrize("status,want", [(422, 400), (404, 404), (429, 429), (503, 503),
                                         (401, 401)])
def test_problem_errors_mapped(status, want):
    got, body = replicate.error(status, json.dumps({
        "title": "Input validation failed", "detail": "prompt is required",
        "status": status}).encode())
    assert got == want and json.loads(body)["error"]["message"] == "prompt is required"


def test_output_text_keeps_what_is_no_sse_line_end():
    """SSE cuts lines at CRLF, LF and CR only: a text piece's U+2028, form feed or
    U+0085 (sent raw in an output event's data) is text, not a line end."""
    e = replicate.ChatEgress(_chat(stream=True), CTX)
    e.follow(_pred("starting"))
    piece = "a\u2028b\x0cc\x1cd\u0085e"
    out = e.feed(f"event: output\nid: 1:0\ndata: {piece}\r\ndata: f".encode())
    out += e.feed(b"event: done\nid: 1:1\ndata: {}")
    text = "".join(json.loads(x[6:])["choices"][0]["delta"].get("content") or ""
                   for x in out if x.startswith(b"data: {"))
    assert text == piece + "\nf"


@pytest.mark.parametrize("url,ok", [
    ("https://api.replicate.com/v1/predictions/abc", True),
    ("https://stream.replicate.com/v1/files/abc", True),
    ("https://stream-b.svc.ric1.c.replicate.net/v1/streams/abc", True),
    ("http://stream.replicate.com/v1/files/abc", False),  # not https: no token
    ("https://replicate.com.evil.example/v1/files/abc", False),
    ("https://evilreplicate.net/x", False),
    ("https://169.254.169.254/latest/meta-data", False)])
def test_the_hosts_a_replys_urls_may_name(url, ok):
    from urllib.parse import urlsplit

    from eldric.backends import call
    from eldric.backends.native.replicate import ADAPTERS

    hosts = ADAPTERS["replicate"].reply_hosts
    assert call._trusted(urlsplit(url), "https://api.replicate.com", hosts) is ok
