"""forward()'s read-only tap on an NDJSON stream (Ollama's): it sees each line, the client
gets the bytes as they came."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from eldric import keys
from eldric.registry import Role
from eldric.stream import Target, Timeouts, forward
from eldric.stream.sse import LINE_END, EventSplitter
from tests.conftest import run_role, url_of
from tests.stream.test_hooks import RelayConfig

TAPPED: list[bytes] = []


async def relay(request: web.Request) -> web.StreamResponse:
    cfg = request.app[keys.CONFIG]
    up = request.app[keys.BUS].upstream("fake", cfg.upstream, role="relay")
    return await forward(request, Target(up, cfg.upstream), "/api/chat",
                         await request.read(), timeouts=Timeouts(), tap=TAPPED.append)


RELAY = Role(name="relay", port=0, config=RelayConfig,
             build=lambda app, cfg: app.router.add_post("/api/chat", relay))


async def test_the_tap_sees_every_ndjson_line(fake_ollama_server, tmp_path):
    TAPPED.clear()
    async with run_role(RELAY, tmp_path, upstream=url_of(fake_ollama_server)) as url:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/api/chat", json={
                    "model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}) as r:
                assert r.headers["Content-Type"].startswith("application/x-ndjson")
                relayed = await r.read()
    lines = [ln for ln in relayed.split(b"\n") if ln]
    assert len(lines) > 2 and TAPPED == lines  # each line, without its line end
    assert b'"done":true' in TAPPED[-1].replace(b" ", b"")


def test_line_splitter_any_chunking_crlf_and_blank_lines():
    lines: list[bytes] = []
    s = EventSplitter(lines.append, LINE_END)
    wire = b'{"a":1}\n{"b":2}\r\n\n{"c":3}'
    for i in range(len(wire)):  # one byte at a time
        s.feed(wire[i:i + 1])
    s.close()  # the last line has no line end: given at close
    assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
