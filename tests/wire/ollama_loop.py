"""The `ollama` Python client in front of one translation, in process: what the client
sends goes through a Factory, the Chat Completions reply given goes back through its
Translator, and the client's own parser (its pydantic types, its stream reader) judges
what comes out. The transport is httpx's MockTransport: no sockets."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import ollama

from eldric.errors import EldricError
from eldric.wire.dialect import OLLAMA

# The upstream's reply to one translated request: a whole JSON body, or SSE events
# (each without its blank line).
Upstream = Callable[[dict], "bytes | list[bytes]"]


class Loop:
    def __init__(self, factory, upstream: Upstream):
        self.factory = factory
        self.upstream = upstream
        self.sent: list[dict] = []  # the translated bodies, as sent upstream
        self.asked: list[dict] = []  # the client's own bodies
        self.replies: list[bytes] = []  # what the client got

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(json.loads(request.content))
        try:
            t = self.factory(request.content)
        except EldricError as exc:
            return httpx.Response(exc.status, content=OLLAMA.error(
                exc.status, exc.message, param=exc.param, code=exc.code),
                headers={"content-type": "application/json"})
        sent = json.loads(t.request())
        self.sent.append(sent)
        reply = self.upstream(sent)
        if isinstance(reply, list):
            assert t.stream
            body = b"".join(t.feed(e) for e in reply) + t.close()
            kind = t.media_type
        else:
            body, kind = t.whole(reply), "application/json"
        self.replies.append(body)
        return httpx.Response(200, content=body, headers={"content-type": kind})

    def client(self) -> ollama.Client:
        return ollama.Client(host="http://ollama.test",
                             transport=httpx.MockTransport(self.handle))


def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> bytes:
    """One Chat Completions stream event, as OpenAI's streaming reference shows them."""
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return b"data: " + json.dumps({
        "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
        "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices": choices,
        **extra}).encode()


def completion(message: dict, finish: str = "stop", usage: dict | None = None) -> bytes:
    """A whole Chat Completions reply (OpenAI's chat object reference)."""
    return json.dumps({
        "id": "chatcmpl-123", "object": "chat.completion", "created": 1677652288,
        "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "message": {"role": "assistant", **message},
                     "logprobs": None, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 9, "completion_tokens": 12,
                           "total_tokens": 21}}).encode()


DONE = b"data: [DONE]"
