"""The tunnel end to end on one edge: a router's forward is queued, a worker's poll takes
it, the worker's streamed upload reaches the router chunk by chunk."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.conftest import metric, until
from tests.roles.tunnel.kit import ROUTER, SSE, auth, connect, edge, head, poll

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def test_a_streamed_reply_reaches_the_caller_chunk_by_chunk(tmp_path):
    """The caller has chunk 1 before the worker sends chunk 2: the upload is relayed as
    it comes, not when it ends."""
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url, concurrency=2))["tunnel_id"]
        caller = s.post(f"{url}/api/v1/tunnel/{tid}/forward/v1/chat/completions?x=1",
                        json=CHAT, headers={**auth(ROUTER), "X-Trace": "t1"})
        call = asyncio.ensure_future(caller.__aenter__())
        req = await poll(s, url, tid)
        assert req["method"] == "POST" and req["path"] == "/v1/chat/completions?x=1"
        assert json.loads(req["body"]) == CHAT
        names = {k.lower(): v for k, v in req["headers"]}
        assert names["x-trace"] == "t1" and "authorization" not in names  # the edge's key stays

        got_first = asyncio.Event()

        async def body():
            yield b'data: {"n": 1}\n\n'
            await asyncio.wait_for(got_first.wait(), 10)
            yield b'data: {"n": 2}\n\ndata: [DONE]\n\n'

        upload = asyncio.ensure_future(s.post(
            f"{url}/api/v1/tunnel/{tid}/response/{req['id']}", data=body(),
            headers=head(200, SSE)))
        resp = await asyncio.wait_for(call, 10)
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        first = await resp.content.readuntil(b"\n\n")
        assert first == b'data: {"n": 1}\n\n'
        got_first.set()
        rest = await resp.content.read()
        assert rest == b'data: {"n": 2}\n\ndata: [DONE]\n\n'
        await caller.__aexit__(None, None, None)
        up = await asyncio.wait_for(upload, 10)
        assert up.status == 200, await up.text()
        async with s.get(f"{url}/api/v1/tunnel/workers",
                         headers=auth("sk-admin")) as r:
            (t,) = (await r.json())["tunnels"]
        assert t["tunnel"] == tid and t["requests"] == 1 and t["in_flight"] == 0


async def test_a_whole_reply_and_the_envelope(tmp_path):
    """POST …/forward with a JSON envelope is the same call; a whole JSON reply comes
    back as the worker sent it."""
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        env = {"method": "GET", "path": "/v1/models", "headers": [["X-A", "b"]], "body": ""}
        call = asyncio.ensure_future(s.post(f"{url}/api/v1/tunnel/{tid}/forward", json=env,
                                            headers=auth(ROUTER)))
        await until(lambda: _metric_is(url, "eldric_edge_tunnel_queued", 1))
        assert await metric(url, "eldric_edge_tunnels") == 1
        req = await poll(s, url, tid)
        assert req["method"] == "GET" and req["path"] == "/v1/models" and req["body"] == b""
        assert await metric(url, "eldric_edge_tunnel_in_flight") == 1
        assert ["X-A", "b"] in req["headers"]
        reply = b'{"object": "list", "data": []}'
        async with s.post(f"{url}/api/v1/tunnel/{tid}/response/{req['id']}", data=reply,
                          headers=head(200, [["Content-Type", "application/json"],
                                             ["Content-Length", str(len(reply))]])) as up:
            assert up.status == 200
        resp = await asyncio.wait_for(call, 10)
        assert resp.status == 200 and await resp.read() == reply
        assert await metric(url, "eldric_edge_tunnel_in_flight") == 0


async def _metric_is(url: str, series: str, value: float) -> bool:
    return await metric(url, series) == value
