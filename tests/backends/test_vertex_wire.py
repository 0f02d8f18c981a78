"""The Vertex adapter's pure parts: which publisher a model goes to and its resource
path, the rawPredict body, and errors in Google's and Anthropic's shapes."""

from __future__ import annotations

import json

import pytest

from eldric.backends.egress import Context
from eldric.backends.native import vertex
from eldric.errors import EldricError

MSG = {"messages": [{"role": "user", "content": "hi"}]}


def test_publisher_and_paths():
    c = vertex.chat(dict(MSG), Context("gemini-2.5-pro", {"project": "p", "location": "europe-west4"}))
    assert isinstance(c, vertex.Chat)
    assert c.outbound().path == ("/v1/projects/p/locations/europe-west4/publishers/google/"
                                 "models/gemini-2.5-pro:generateContent")
    c = vertex.chat({**MSG, "stream": True, "max_tokens": 9},
                    Context("claude-opus-4-1@20250805", {"project": "p"}))
    assert isinstance(c, vertex.Claude)
    out = c.outbound()
    assert out.path == ("/v1/projects/p/locations/global/publishers/anthropic/models/"
                        "claude-opus-4-1@20250805:streamRawPredict")
    body = json.loads(out.body)
    assert body == {"anthropic_version": "vertex-2023-10-16", "max_tokens": 9,
                    "messages": [{"role": "user", "content": "hi"}], "stream": True}
    c = vertex.chat(dict(MSG), Context("my-tuned", {"project": "p", "publisher": "anthropic"}))
    assert isinstance(c, vertex.Claude) and c.outbound().path.endswith("my-tuned:rawPredict")


def test_missing_project_is_a_server_misconfiguration():
    with pytest.raises(EldricError) as exc:
        vertex.chat(dict(MSG), Context("gemini-2.5-pro", {}))
    assert exc.value.status == 500 and exc.value.code == "backend_misconfigured"

    class Reach:
        options: dict = {}
    assert vertex.ADAPTERS["vertex"].health(Reach()) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("status,raw,want,code", [
    (429, {"error": {"code": 429, "message": "Quota exceeded for aiplatform.googleapis.com",
                     "status": "RESOURCE_EXHAUSTED"}}, 429, "rate_limit_exceeded"),
    (404, {"error": {"code": 404, "message": "Publisher Model not found",
                     "status": "NOT_FOUND"}}, 404, "model_not_found"),
    (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     503, "upstream_overloaded"),
    (400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
     400, "invalid_request"),
])
def test_claude_errors_in_both_shapes(status, raw, want, code):
    c = vertex.chat(dict(MSG), Context("claude-x", {"project": "p"}))
    got, body = c.error(status, json.dumps(raw).encode())
    assert got == want and json.loads(body)["error"]["code"] == code


def test_claude_error_that_is_neither_shape_is_normalised():
    got, body = vertex.chat(dict(MSG), Context("claude-x", {"project": "p"})).error(
        502, b"<html>gateway</html>")
    assert got == 502 and json.loads(body)["error"]["message"] == "<html>gateway</html>"


def test_claude_whole_reply_and_usage():
    c = vertex.chat(dict(MSG), Context("claude-x", {"project": "p"}))
    out = json.loads(c.whole(json.dumps({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 2}}).encode()))
    assert out["choices"][0]["message"]["content"] == "hello" and c.usage == (3, 2)
    with pytest.raises(ValueError):
        c.whole(b"<html>")
