"""The core's two optional hooks: an explicit body rewrite and a read-only SSE tap."""

from __future__ import annotations

import json

import aiohttp
import msgspec
from aiohttp import web

from eldric import keys
from eldric.config import RoleConfig
from eldric.registry import Role
from eldric.stream import Target, Timeouts, forward, with_fields
from eldric.stream.sse import EventSplitter
from tests.conftest import run_role, url_of
from tests.fakes.openai_server import KNOBS, MODELS

TAPPED: list[bytes] = []


class RelayConfig(RoleConfig, kw_only=True, forbid_unknown_fields=True):
    upstream: str = ""


async def relay(request: web.Request) -> web.StreamResponse:
    cfg = request.app[keys.CONFIG]
    up = request.app[keys.BUS].upstream("fake", cfg.upstream, role="relay")
    body = await request.read()
    return await forward(request, Target(up, cfg.upstream), "/v1/chat/completions", body,
                         timeouts=Timeouts(),
                         rewrite=with_fields(model=MODELS[0],
                                             stream_options={"include_usage": True}),
                         tap=TAPPED.append)


def build(app, cfg):
    app.router.add_post("/v1/chat/completions", relay)


RELAY = Role(name="relay", port=0, config=RelayConfig, build=build)


async def test_rewrite_and_tap(fake_openai_server, tmp_path):
    async with run_role(RELAY, tmp_path, upstream=url_of(fake_openai_server)) as url:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions",
                              json={"model": "alias", "stream": True,
                                    "messages": [{"role": "user", "content": "hi"}]}) as r:
                relayed = await r.read()
    sent = json.loads(fake_openai_server.app[KNOBS].requests[0]["body"])
    assert sent["model"] == MODELS[0]  # rewritten
    assert sent["stream_options"] == {"include_usage": True}  # added
    assert sent["messages"] == [{"role": "user", "content": "hi"}]  # the rest kept
    # The tap saw every event, and the client got exactly those events.
    assert TAPPED[-1] == b"data: [DONE]"
    assert b"\n\n".join(TAPPED) + b"\n\n" == relayed
    assert any(b'"usage"' in e for e in TAPPED)


def test_splitter_handles_any_chunking_and_crlf():
    events: list[bytes] = []
    s = EventSplitter(events.append)
    wire = b"data: 1\n\ndata: 2\r\n\r\n: comment\n\ndata: [DONE]\n\n"
    for i in range(len(wire)):  # one byte at a time
        s.feed(wire[i:i + 1])
    s.close()
    assert events == [b"data: 1", b"data: 2", b": comment", b"data: [DONE]"]


def test_a_failing_tap_is_isolated():
    calls = []

    def tap(event: bytes) -> None:
        calls.append(event)
        raise ValueError("boom")

    s = EventSplitter(tap)
    s.feed(b"data: 1\n\ndata: 2\n\n")  # must not raise
    assert calls == [b"data: 1"]  # disabled after its first failure


def test_with_fields_only_touches_named_fields():
    body = msgspec.json.encode({"model": "a", "messages": [{"role": "user", "content": "é"}],
                                "temperature": 0.2})
    out = msgspec.json.decode(with_fields(model="b")(body))
    assert out == {"model": "b", "messages": [{"role": "user", "content": "é"}],
                   "temperature": 0.2}


def test_event_filter_drops_only_selected_events_across_chunks():
    from eldric.stream.sse import EventFilter

    wire = (b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
            b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n'
            b"data: [DONE]\n\n")
    for size in (1, 7, len(wire)):
        f = EventFilter(lambda e: b'"choices":[]' in e)
        out = b"".join(f.feed(wire[i:i + size]) for i in range(0, len(wire), size)) + f.close()
        assert out == (b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
                       b"data: [DONE]\n\n")


def test_event_filter_reads_crlf_framed_events_as_the_splitter_does():
    """SSE allows CRLF line ends; an upstream that frames events with them gets its usage
    chunk dropped and the rest relayed event by event, not held to the end."""
    from eldric.stream.sse import EventFilter

    wire = (b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n'
            b'data: {"choices":[],"usage":{"total_tokens":3}}\r\n\r\n'
            b"data: [DONE]\r\n\r\n")
    for size in (1, 5, len(wire)):
        f = EventFilter(lambda e: b'"choices":[]' in e)
        out = b"".join(f.feed(wire[i:i + size]) for i in range(0, len(wire), size))
        assert out == (b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n'
                       b"data: [DONE]\r\n\r\n")  # nothing held back for close()
        assert f.close() == b""
