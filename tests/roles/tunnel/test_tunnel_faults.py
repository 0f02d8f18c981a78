"""The tunnel's failure rules (issue 18), each on an edge alone with a scripted worker."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.conftest import read_head, until
from tests.roles.tunnel.kit import (ADMIN, OTHER, PLAIN, ROUTER, WORKER, auth, chunk, connect, edge,
                                    forwarded, poll, raw_upload)


async def _code(r: aiohttp.ClientResponse) -> str:
    return (await r.json())["error"]["code"]


async def test_a_poll_with_nothing_to_do_gets_204_after_the_long_poll_time(tmp_path):
    async with edge(tmp_path, tunnel_poll_ms=300) as url, aiohttp.ClientSession() as s:
        hello = await connect(s, url)
        assert hello["long_poll_ms"] == 300
        assert hello["poll_url"] == f"/api/v1/tunnel/{hello['tunnel_id']}/poll"
        assert hello["url"] == f"tunnel+http://{url.removeprefix('http://')}/{hello['tunnel_id']}"
        t0 = asyncio.get_running_loop().time()
        assert await poll(s, url, hello["tunnel_id"]) is None
        assert asyncio.get_running_loop().time() - t0 >= 0.25


async def test_scopes_are_enforced(tmp_path):
    """A plain inference key can neither open a tunnel nor call one; a worker's key
    cannot call a tunnel (scope cluster); a router's key cannot take its requests."""
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        async with s.post(url + "/api/v1/tunnel/connect", json={}, headers=auth(PLAIN)) as r:
            assert r.status == 403 and await _code(r) == "scope_required"
            assert (await r.json())["error"]["param"] == "register"
        async with s.post(url + "/api/v1/tunnel/connect", json={}) as r:
            assert r.status == 401
        tid = (await connect(s, url))["tunnel_id"]
        for key in (WORKER, PLAIN):
            async with s.post(f"{url}/api/v1/tunnel/{tid}/forward/health", headers=auth(key)) as r:
                assert r.status == 403 and (await r.json())["error"]["param"] == "cluster"
        async with s.get(f"{url}/api/v1/tunnel/{tid}/poll", headers=auth(ROUTER)) as r:
            assert r.status == 403 and await _code(r) == "scope_required"
        async with s.get(f"{url}/api/v1/tunnel/workers", headers=auth(WORKER)) as r:
            assert r.status == 401  # the list is the admin's


async def test_the_queue_is_bounded_per_tunnel(tmp_path):
    async with edge(tmp_path, tunnel_max_queued=2) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        waiting = [await forwarded(s, url, tid) for _ in range(2)]
        await until(lambda: _queued(s, url, 2))
        async with s.post(f"{url}/api/v1/tunnel/{tid}/forward/v1/chat/completions",
                          json={}, headers=auth(ROUTER)) as r:
            assert r.status == 503 and await _code(r) == "tunnel_busy"
            assert int(r.headers["Retry-After"]) >= 1
        for w in waiting:
            w.cancel()


async def _queued(s: aiohttp.ClientSession, url: str, n: int) -> bool:
    async with s.get(f"{url}/api/v1/tunnel/workers", headers=auth(ADMIN)) as r:
        tunnels = (await r.json())["tunnels"]
    return bool(tunnels) and tunnels[0]["queued"] == n


async def test_a_silent_tunnel_is_dropped_and_its_requests_answered_503(tmp_path):
    """No poll for 2 x the poll time: what waits in the queue, and what a poll took but
    never began to answer, get 503 before any byte (a router fails them over); the
    worker's next poll gets 404 (connect again)."""
    async with edge(tmp_path, tunnel_poll_ms=200) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        taken = await forwarded(s, url, tid)
        assert await poll(s, url, tid) is not None  # taken, never answered
        queued = await forwarded(s, url, tid)
        for call in (taken, queued):
            r = await asyncio.wait_for(call, 10)
            assert r.status == 503 and await _code(r) == "tunnel_unavailable"
        async with s.get(f"{url}/api/v1/tunnel/{tid}/poll", headers=auth(WORKER)) as r:
            assert r.status == 404 and await _code(r) == "tunnel_not_found"
        # a router's call (a health check too) meanwhile: 503, which it fails over
        async with s.get(f"{url}/api/v1/tunnel/{tid}/forward/health", headers=auth(ROUTER)) as r:
            assert r.status == 503 and await _code(r) == "tunnel_unavailable"


async def _streaming(s: aiohttp.ClientSession, caller: aiohttp.ClientSession, url: str):  # type: ignore[no-untyped-def]
    """A reply streaming through a tunnel: the caller has its first event. (The caller's
    response, and the worker's upload socket.)"""
    tid = (await connect(s, url))["tunnel_id"]
    call = await forwarded(caller, url, tid)
    req = await poll(s, url, tid)
    reader, writer = await raw_upload(url, tid, req["id"])
    writer.write(chunk(b'data: {"n": 1}\n\n'))
    await writer.drain()
    resp = await asyncio.wait_for(call, 10)
    assert await resp.content.readuntil(b"\n\n") == b'data: {"n": 1}\n\n'
    return resp, reader, writer


async def test_a_worker_vanishing_mid_upload_ends_the_stream_with_an_error_event(tmp_path):
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        resp, _, writer = await _streaming(s, s, url)
        writer.transport.abort()  # the worker is gone
        rest = await asyncio.wait_for(resp.content.read(), 10)
        assert rest.startswith(b"data: {") and b'"upstream_error"' in rest
        assert rest.count(b"\n\n") == 1  # one error event, then the end


async def test_a_caller_leaving_stops_the_upload_with_409(tmp_path):
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        caller = aiohttp.ClientSession()
        _, reader, writer = await _streaming(s, caller, url)
        await caller.close()  # the caller leaves mid-stream
        status = None
        for _ in range(200):  # the worker goes on until the edge says stop
            writer.write(chunk(b'data: {"n": 2}\n\n'))
            await writer.drain()
            try:
                status, _ = await asyncio.wait_for(read_head(reader), 0.05)
                break
            except (TimeoutError, asyncio.TimeoutError):
                continue
        assert status == 409
        writer.close()


async def test_a_caller_leaving_takes_its_request_out_of_the_queue(tmp_path):
    async with edge(tmp_path, tunnel_poll_ms=300) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        caller = aiohttp.ClientSession()
        await forwarded(caller, url, tid)
        await until(lambda: _queued(s, url, 1))
        await caller.close()
        await until(lambda: _queued(s, url, 0))
        assert await poll(s, url, tid) is None  # nothing for the worker to run


async def test_an_upload_for_a_request_the_edge_does_not_wait_for_is_409(tmp_path):
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        async with s.post(f"{url}/api/v1/tunnel/{tid}/response/nope", data=b"x",
                          headers={**auth(WORKER), "X-Eldric-Tunnel-Status": "200"}) as r:
            assert r.status == 409 and await _code(r) == "tunnel_request_gone"
        async with s.post(f"{url}/api/v1/tunnel/{tid}/response/nope", data=b"x",
                          headers=auth(WORKER)) as r:
            assert r.status == 400  # no status: not a reply


async def test_a_reconnect_keeps_the_id_even_after_an_edge_restart(tmp_path):
    port = __import__("tests.conftest", fromlist=["free_port"]).free_port()
    async with aiohttp.ClientSession() as s:
        async with edge(tmp_path, http_port=port) as url:
            tid = (await connect(s, url, worker_id="w-1"))["tunnel_id"]
            assert (await connect(s, url, tunnel_id=tid))["tunnel_id"] == tid
        async with edge(tmp_path, http_port=port) as url:
            async with s.get(f"{url}/api/v1/tunnel/{tid}/poll", headers=auth(WORKER)) as r:
                assert r.status == 404 and await _code(r) == "tunnel_not_found"
            assert (await connect(s, url, tunnel_id=tid))["tunnel_id"] == tid
            async with s.post(url + "/api/v1/tunnel/connect", json={"tunnel_id": tid},
                              headers=auth(OTHER)) as r:
                assert r.status == 409 and await _code(r) == "tunnel_id_taken"
            async with s.get(f"{url}/api/v1/tunnel/{tid}/poll", headers=auth(OTHER)) as r:
                assert r.status == 403 and await _code(r) == "tunnel_forbidden"
            async with s.get(f"{url}/api/v1/tunnel/workers", headers=auth(ADMIN)) as r:
                (t,) = (await r.json())["tunnels"]
            assert t["tunnel"] == tid and t["client"] == "home"


async def test_a_slow_caller_holds_the_worker_back_not_the_edges_memory(tmp_path):
    """A caller that reads nothing: the worker's upload stalls once the bounded relay and
    the sockets' buffers are full (far below what it has to send); when the caller reads,
    every byte arrives, in order."""
    piece = b"x" * (1 << 20)
    total = 256
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        call = await forwarded(s, url, tid)
        req = await poll(s, url, tid)
        _, writer = await raw_upload(url, tid, req["id"], headers=[["Content-Type",
                                                                     "text/plain"]])
        writer.write(chunk(piece))  # the reply's head goes with its first bytes
        resp = await asyncio.wait_for(call, 10)
        sent = 1
        for _ in range(total - 1):
            writer.write(chunk(piece))
            try:
                await asyncio.wait_for(writer.drain(), 2)
            except (TimeoutError, asyncio.TimeoutError):
                break
            sent += 1
        assert sent < total // 2  # held back: the edge did not take it all in
        reader_task = asyncio.ensure_future(resp.content.read())
        await writer.drain()
        for _ in range(total - sent - 1):
            writer.write(chunk(piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader_task, 60)
        assert len(data) == total * len(piece) and data == piece * total
        writer.close()


async def test_a_disconnect_ends_the_tunnel_and_fails_its_queue_over(tmp_path):
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        queued = await forwarded(s, url, tid)
        await until(lambda: _queued(s, url, 1))
        async with s.post(f"{url}/api/v1/tunnel/{tid}/disconnect", headers=auth(OTHER)) as r:
            assert r.status == 403  # not its tunnel
        async with s.post(f"{url}/api/v1/tunnel/{tid}/disconnect", headers=auth(WORKER)) as r:
            assert r.status == 200 and (await r.json())["status"] == "disconnected"
        r = await asyncio.wait_for(queued, 10)
        assert r.status == 503 and await _code(r) == "tunnel_unavailable"
        async with s.get(f"{url}/api/v1/tunnel/{tid}/poll", headers=auth(WORKER)) as r:
            assert r.status == 404
        async with s.get(f"{url}/api/v1/tunnel/workers", headers=auth(ADMIN)) as r:
            assert (await r.json())["tunnels"] == []


async def test_a_bad_envelope_is_a_400_naming_the_field(tmp_path):
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        good = {"method": "POST", "path": "/v1/chat/completions", "headers": [], "body": ""}
        for bad, param in [({"body": "not base64!"}, "body"), ({"method": "po st"}, "method"),
                           ({"path": "v1/x"}, "path"), ({"headers": [["X-A", "b\r\nX: y"]]},
                                                        "headers"), ({"extra": 1}, None)]:
            async with s.post(f"{url}/api/v1/tunnel/{tid}/forward", json={**good, **bad},
                              headers=auth(ROUTER)) as r:
                assert r.status == 400, bad
                assert (await r.json())["error"]["param"] == param, bad
        async with s.post(f"{url}/api/v1/tunnel/{tid}/forward", data=b"{",
                          headers=auth(ROUTER)) as r:
            assert r.status == 400
        async with s.post(url + "/api/v1/tunnel/connect", json={"tunnel_id": "../x"},
                          headers=auth(WORKER)) as r:
            assert r.status == 400 and (await r.json())["error"]["param"] == "tunnel_id"
        async with s.post(url + "/api/v1/tunnel/connect", json={"concurrency": 0},
                          headers=auth(WORKER)) as r:
            assert r.status == 400 and (await r.json())["error"]["param"] == "concurrency"


async def test_an_edge_stopping_ends_the_waiting_polls_at_once(tmp_path):
    """A held poll would hold the edge's drain for the whole long-poll time."""
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as s:
        async with edge(tmp_path, tunnel_poll_ms=60_000) as url:
            tid = (await connect(s, url))["tunnel_id"]
            waiting = asyncio.ensure_future(poll(s, url, tid))
            await asyncio.sleep(0.3)
            t0 = loop.time()
        assert loop.time() - t0 < 15
        assert await asyncio.wait_for(waiting, 5) is None  # 204


async def test_a_broken_stream_ends_in_the_dialect_of_the_worker_path(tmp_path):
    """The error event that ends a cut stream is in the API of the path the tunnel was
    asked on the worker, not of the edge's own /api/v1/tunnel/… path: Ollama's NDJSON
    ends with an {"error": …} line, Anthropic's SSE with an `event: error`."""
    import json

    from tests.roles.tunnel.kit import forwarded_to

    cases = [("/api/chat", "application/x-ndjson", b'{"message": {"content": "a"}}\n'),
             ("/v1/messages", "text/event-stream", b"event: ping\ndata: {\"type\": \"ping\"}\n\n")]
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        for path, kind, first in cases:
            call = await forwarded_to(s, url, tid, path)
            req = await poll(s, url, tid)
            assert req["path"] == path
            _, writer = await raw_upload(url, tid, req["id"], headers=[["Content-Type", kind]])
            writer.write(chunk(first))
            await writer.drain()
            resp = await asyncio.wait_for(call, 10)
            assert await resp.content.readexactly(len(first)) == first
            writer.transport.abort()  # the worker is gone mid-reply
            rest = await asyncio.wait_for(resp.content.read(), 10)
            if kind == "application/x-ndjson":
                line = json.loads(rest)  # one line, Ollama's error shape
                assert rest.endswith(b"\n") and isinstance(line["error"], str), rest
            else:
                assert rest.startswith(b"event: error\ndata: "), rest
                data = json.loads(rest.split(b"data: ", 1)[1])
                assert data["type"] == "error" and data["error"]["type"], rest


async def test_a_malformed_reply_head_fails_the_request_at_once(tmp_path):
    """A worker that uploads a reply with a bad status header, headers that are no JSON,
    or a header with a line break gets 400, and its caller gets a 502 at once (before
    any byte: a router fails over), not a wait for the first-byte timeout."""
    bad = [{"X-Eldric-Tunnel-Status": "abc"}, {"X-Eldric-Tunnel-Status": "99"},
           {"X-Eldric-Tunnel-Status": "200", "X-Eldric-Tunnel-Headers": "{not json"},
           {"X-Eldric-Tunnel-Status": "200", "X-Eldric-Tunnel-Headers": '[["a"]]'},
           {"X-Eldric-Tunnel-Status": "200", "X-Eldric-Tunnel-Headers": '[["X", "a\\nb"]]'}]
    async with edge(tmp_path, first_byte_timeout=60_000) as url, \
            aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        for head in bad:
            call = await forwarded(s, url, tid)
            req = await poll(s, url, tid)
            async with s.post(f"{url}/api/v1/tunnel/{tid}/response/{req['id']}", data=b"x",
                              headers={**auth(WORKER), **head}) as r:
                assert r.status == 400, (head, await r.text())
            r = await asyncio.wait_for(call, 5)
            assert r.status == 502 and await _code(r) == "upstream_error", head
            # and the request is over: a second (good) upload for it is 409
            async with s.post(f"{url}/api/v1/tunnel/{tid}/response/{req['id']}", data=b"x",
                              headers={**auth(WORKER), "X-Eldric-Tunnel-Status": "200"}) as r:
                assert r.status == 409


async def test_huge_upload_headers_are_refused_and_fail_the_request(tmp_path):
    """A reply head larger than a header may be: the edge's HTTP parser refuses the
    upload (4xx), and the edge neither crashes nor keeps the tunnel from serving."""
    async with edge(tmp_path, first_byte_timeout=3_000) as url, \
            aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        call = await forwarded(s, url, tid)
        req = await poll(s, url, tid)
        huge = json.dumps([["X-Big", "v" * 200_000]])
        async with s.post(f"{url}/api/v1/tunnel/{tid}/response/{req['id']}", data=b"x",
                          headers={**auth(WORKER), "X-Eldric-Tunnel-Status": "200",
                                   "X-Eldric-Tunnel-Headers": huge}) as r:
            assert 400 <= r.status < 500
        r = await asyncio.wait_for(call, 10)
        assert r.status in (502, 504)  # never answered: the first-byte timeout ends it
        call = await forwarded(s, url, tid)  # the tunnel still serves
        req = await poll(s, url, tid)
        async with s.post(f"{url}/api/v1/tunnel/{tid}/response/{req['id']}", data=b"{}",
                          headers={**auth(WORKER), "X-Eldric-Tunnel-Status": "200",
                                   "X-Eldric-Tunnel-Headers": '[["Content-Type", "application/json"]]'}) as r:
            assert r.status == 200, await r.text()
        r = await asyncio.wait_for(call, 10)
        assert r.status == 200 and await r.read() == b"{}"


async def test_an_edge_stopping_fails_its_queue_over_at_once(tmp_path):
    """Shutdown with a request queued for a tunnel: no worker polls a stopping edge (its
    polls get 503 edge_stopping), so the request gets 503 tunnel_unavailable at once, for
    the router to fail over, rather than wait out the grace period and be cut."""
    import contextlib

    async with aiohttp.ClientSession() as s, contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(edge(tmp_path, grace_period=20_000))
        resp, _, writer = await _streaming(s, s, url)  # keeps the edge draining
        tid = resp.url.path.split("/")[4]
        queued = await forwarded(s, url, tid)
        await until(lambda: _queued(s, url, 1))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        stopping = asyncio.ensure_future(stack.aclose())
        r = await asyncio.wait_for(queued, 10)
        assert r.status == 503 and await _code(r) == "tunnel_unavailable"
        assert loop.time() - t0 < 5
        writer.transport.abort()
        resp.close()
        await asyncio.wait_for(stopping, 25)
