"""The forwarding core's HTTP/1.1 client against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from eldric.stream.client import ReplyTimeout, UpstreamClosed
from eldric.stream.pool import ConnectionPool

T = dict(connect_timeout=2, first_byte_timeout=2, idle_timeout=2)


def _server_app(peers: list, bodies: list) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        bodies.append((request.path_qs, request.headers.get("X-Test"), await request.read()))
        return web.json_response({"ok": True})

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)  # no Content-Length: chunked transfer encoding
        for i in range(3):
            await resp.write(b"part%d;" % i)
        await resp.write_eof()
        return resp

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 8 << 20
        await resp.prepare(request)
        for _ in range(128):
            await resp.write(b"x" * (64 << 10))
        return resp

    app = web.Application()
    app.router.add_post("/prefix/v1/echo", echo)
    app.router.add_post("/v1/echo", echo)
    app.router.add_get("/v1/chunked", chunked)
    async def head(request: web.Request) -> web.Response:
        return web.Response(headers={"Content-Length": "99"})

    app.router.add_route("HEAD", "/v1/echo", head)
    app.router.add_get("/v1/big", big)
    return app


@pytest.fixture
async def upstream(aiohttp_server):
    peers, bodies = [], []
    server = await aiohttp_server(_server_app(peers, bodies))
    return server, peers, bodies


async def test_keep_alive_reuses_one_connection(upstream):
    server, peers, bodies = upstream
    pool = ConnectionPool()
    base = str(server.make_url("")).rstrip("/")
    for i in range(5):
        resp = await pool.request("POST", base, f"/v1/echo?i={i}", b"X-Test: yes\r\n",
                                  b'{"a": 1}', **T)
        assert resp.status == 200 and await resp.read_all() == b'{"ok": true}'
        resp.release()
    assert len(set(peers)) == 1  # one TCP connection for all five
    assert bodies[-1] == ("/v1/echo?i=4", "yes", b'{"a": 1}')
    pool.close()


async def test_base_url_path_prefix(upstream):
    server, _, bodies = upstream
    pool = ConnectionPool()
    resp = await pool.request("POST", str(server.make_url("/prefix")), "/v1/echo", b"", b"{}", **T)
    assert resp.status == 200
    await resp.read_all()
    resp.release()
    assert bodies[-1][0] == "/prefix/v1/echo"
    pool.close()


async def test_chunked_reply_is_decoded(upstream):
    server, _, _ = upstream
    pool = ConnectionPool()
    resp = await pool.request("GET", str(server.make_url("")), "/v1/chunked", b"", b"", **T)
    assert resp.content_length is None
    assert await resp.read_all() == b"part0;part1;part2;"
    resp.release()
    pool.close()


async def test_head_reply_has_no_body(upstream):
    server, _, _ = upstream
    pool = ConnectionPool()
    resp = await asyncio.wait_for(
        pool.request("HEAD", str(server.make_url("")), "/v1/echo", b"", b"", **T), 3)
    assert resp.status == 200 and await resp.read_all() == b""
    resp.release()
    pool.close()


async def test_stale_pooled_connection_is_retried_on_a_fresh_one(aiohttp_server):
    """An upstream that closes idle keep-alive connections: the next request on the pooled
    one fails before any reply byte, and must go through on a new connection."""
    served = []

    async def once(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        await writer.drain()
        writer.close()  # ...but closes it anyway, as a server with a short idle timeout does

    server = await asyncio.start_server(once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool()
    for pause in (0.05, 0, 0.05, 0, 0):  # with and without time for the FIN to arrive
        resp = await pool.request("POST", f"http://127.0.0.1:{port}", "/", b"", b"{}", **T)
        assert await resp.read_all() == b"ok"
        resp.release()
        await asyncio.sleep(pause)
    assert len(served) == 5
    server.close()
    pool.close()


async def test_slow_reader_pauses_the_upstream_without_timing_out(upstream):
    server, _, _ = upstream
    pool = ConnectionPool()
    resp = await pool.request("GET", str(server.make_url("")), "/v1/big", b"", b"",
                              connect_timeout=2, first_byte_timeout=2, idle_timeout=0.3)
    got = len(await resp.read_chunk())
    await asyncio.sleep(0.8)  # longer than the idle timeout: reading is paused meanwhile
    assert resp._conn.paused
    while chunk := await resp.read_chunk():
        got += len(chunk)
    assert got == 8 << 20
    resp.release()
    pool.close()


async def test_first_byte_timeout_and_server_closing_mid_reply():
    async def silent(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)

    async def dies(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.close()

    s1 = await asyncio.start_server(silent, "127.0.0.1", 0)
    s2 = await asyncio.start_server(dies, "127.0.0.1", 0)
    pool = ConnectionPool()
    with pytest.raises(ReplyTimeout) as info:
        await pool.request("GET", f"http://127.0.0.1:{s1.sockets[0].getsockname()[1]}", "/",
                           b"", b"", connect_timeout=1, first_byte_timeout=0.2, idle_timeout=1)
    assert info.value.phase == "first_byte"
    resp = await pool.request("GET", f"http://127.0.0.1:{s2.sockets[0].getsockname()[1]}", "/",
                              b"", b"", **T)
    assert await resp.read_chunk() == b"only part"
    with pytest.raises(UpstreamClosed):
        await resp.read_chunk()
    resp.close()
    s1.close()
    s2.close()
    pool.close()


@pytest.mark.parametrize("pooled", [False, True])
async def test_a_request_cancelled_before_its_head_closes_its_connection(aiohttp_server,
                                                                         pooled):
    """The caller gives up before the reply's head (a client leaving, a swarm's round
    timeout): the upstream must see its connection close at once, on a fresh connection
    and on a reused keep-alive one alike, not keep working until a timer fires."""
    gone = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # the test server cancels a handler whose client left
            gone.set()
            raise
        return web.json_response({})

    async def quick(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/quick", quick)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    pool = ConnectionPool()
    if pooled:  # one finished request leaves a keep-alive connection in the pool
        resp = await pool.request("POST", base, "/quick", b"", b"{}", **T)
        await resp.read_all()
        resp.release()
        assert sum(len(q) for q in pool.idle.values()) == 1
    call = asyncio.ensure_future(pool.request("POST", base, "/slow", b"", b"{}",
                                              **{**T, "first_byte_timeout": 60}))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(gone.wait(), 1)
    assert not any(pool.idle.values())  # and it is not handed out again
    pool.close()
