"""What eldric.serve.aiohttp_glue relies on in aiohttp, pinned: an aiohttp upgrade that
changes it fails here, by name. Real sockets on 127.0.0.1; a bare asyncio server stands
in for the fast lane (it takes each connection's first bytes, then hands it over)."""

from __future__ import annotations

import asyncio
import inspect
import json

import pytest
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from eldric.serve.aiohttp_glue import (MAX_HEADERS, MAX_LINE, drain, hand_over, no_continue,
                                       protocol_factory, send_continue)

from tests.conftest import read_reply

GET = b"GET /slow?s=%s HTTP/1.1\r\nHost: x\r\n\r\n"


class _Lane(asyncio.Protocol):
    """Reads until it has a whole head, pauses reading (as the lane does under pipelined
    load), then hands the connection and the bytes it holds to aiohttp."""

    def __init__(self, factory) -> None:  # type: ignore[no-untyped-def]
        self.factory = factory
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if b"\r\n\r\n" in self.buf:
            self.transport.pause_reading()  # type: ignore[attr-defined]
            hand_over(self.transport, self.factory, self.buf)  # type: ignore[arg-type]
            self.transport.resume_reading()  # type: ignore[attr-defined]


@pytest.fixture
async def handed_over():
    """(port, runner) of an aiohttp app served only through hand_over()."""
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query["s"]))
        return web.Response(text=request.query["s"])

    async def echo(request: web.Request) -> web.Response:
        try:
            return web.Response(body=await request.read())
        except HttpProcessingError as exc:  # what read_body turns into the JSON 400
            return web.Response(status=400, text=f"body: {exc.message.splitlines()[0]}")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           keepalive_timeout=30)
    await runner.setup()
    factory = protocol_factory(runner)
    server = await asyncio.get_running_loop().create_server(lambda: _Lane(factory),
                                                            "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], runner
    server.close()
    await runner.cleanup()


async def test_runner_server_makes_the_per_connection_protocol(handed_over):
    """RequestHandler(server, loop=server._loop, **server._kwargs), as web.Server() makes
    it: the runner's settings reach it."""
    _, runner = handed_over
    proto = protocol_factory(runner)()
    assert isinstance(proto, RequestHandler)
    assert proto._keepalive_timeout == 30 and proto._lingering_time > 0


def test_the_limits_the_lane_copies_are_aiohttps():
    defaults = inspect.signature(RequestHandler.__init__).parameters
    assert defaults["max_line_size"].default == MAX_LINE
    assert defaults["max_field_size"].default == MAX_LINE
    assert defaults["max_headers"].default == MAX_HEADERS


async def test_a_head_aiohttp_refuses_gets_eldrics_json(handed_over):
    port, _ = handed_over
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200))
                 + b"\r\n")
    status, headers, body = await read_reply(reader)
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_http_request"
    assert await asyncio.wait_for(reader.read(), 1) == b""
    writer.close()


async def test_a_body_that_breaks_fails_its_own_read(handed_over):
    """aiohttp queues the parse error (_ErrInfo) behind the request whose body broke; the
    glue gives it to that request's body (_current_request), once: one reply, then the
    connection closes, with no lingering read of the rest (_lingering_time)."""
    port, _ = handed_over
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n")
    await asyncio.sleep(0.1)
    writer.write(b"zz\r\n")
    status, _, body = await read_reply(reader)
    assert (status, body) == (400, b"body: Invalid character in chunk size:")
    assert await asyncio.wait_for(reader.read(), 1) == b""
    writer.close()


async def test_handed_over_bytes_are_parsed_and_the_connection_stays(handed_over):
    """aiohttp answers what the lane had buffered (two pipelined requests and the start of
    a third), in order, then goes on reading the same connection."""
    port, _ = handed_over
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GET % b"0" + GET % b"0.01" + (GET % b"0")[:10])
    writer.write((GET % b"0")[10:])
    for want in (b"0", b"0.01", b"0"):
        status, _, body = await read_reply(reader)
        assert (status, body) == (200, want)
    writer.write(GET % b"0")
    assert (await read_reply(reader))[2] == b"0"
    writer.close()


async def test_drain_finishes_replies_in_progress_and_closes_idle_ones(handed_over):
    port, runner = handed_over
    busy_r, busy_w = await asyncio.open_connection("127.0.0.1", port)
    idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
    idle_w.write(GET % b"0")
    assert (await read_reply(idle_r))[0] == 200
    late_r, late_w = await asyncio.open_connection("127.0.0.1", port)
    busy_w.write(GET % b"0.3")
    late_w.write(GET % b"30")
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    draining = asyncio.ensure_future(drain(runner, 1.0))
    assert await asyncio.wait_for(idle_r.read(), 1) == b""  # idle: closed at once
    status, _, body = await read_reply(busy_r)  # in progress: finished
    assert (status, body) == (200, b"0.3")
    await asyncio.wait_for(draining, 3)
    assert 0.9 <= loop.time() - t0 < 2.5  # waited out the grace period for the late one
    assert await asyncio.wait_for(late_r.read(), 1) == b""  # then it was cut
    for w in (busy_w, idle_w, late_w):
        w.close()


async def test_drain_of_a_runner_never_set_up_does_nothing():
    runner = web.AppRunner(web.Application())
    await drain(runner, 0.1)
    with pytest.raises(RuntimeError):
        protocol_factory(runner)


async def test_a_route_answers_expect_continue_itself(aiohttp_server):
    """expect_handler=no_continue: aiohttp sends no `100 Continue` before the handler;
    send_continue() sends it, and the final reply follows as the only other one."""
    async def take(request: web.Request) -> web.Response:
        if request.query.get("refuse"):
            return web.Response(status=403, text="no")
        await send_continue(request)
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/take", take, expect_handler=no_continue)
    server = await aiohttp_server(app)
    for query, first in ((b"", b"HTTP/1.1 100 Continue\r\n\r\n"), (b"?refuse=1", None)):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /take%s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5\r\n\r\n" % query)
        if first is None:
            assert (await read_reply(reader))[0] == 403  # no 100 before it
        else:
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == first
            writer.write(b"hello")
            status, headers, body = await read_reply(reader)
            assert (status, body) == (200, b"hello")
            assert headers["content-length"] == "5"  # output_size reset: a normal reply
        writer.close()
