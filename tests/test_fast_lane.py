"""The fast lane (eldric.serve) at the HTTP level: framing, keep-alive, pipelining, the
hand-over to aiohttp, limits, back-pressure. Raw sockets against a real worker (and edge)
in front of the fake vLLM server.

Which lane answered is visible: aiohttp adds a `Server: Python/… aiohttp/…` header, the
fast lane does not.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
import pytest

from tests.conftest import (on_fast_lane, open_raw, raw_post, read_head, read_reply,
                            read_request, run_eldric, url_of)
from tests.fakes.openai_server import KNOBS, MODELS

CHAT = json.dumps({"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}).encode()


def post(path: str = "/v1/chat/completions", body: bytes = CHAT, extra: bytes = b"",
         version: bytes = b"HTTP/1.1") -> bytes:
    return raw_post(path, body, extra, version)


GET_MODELS = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"


def chunked_post(body: bytes = CHAT, extra: bytes = b"") -> bytes:
    """A chunked request body: the lane hands it to aiohttp."""
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
            % (extra, len(body), body))


def vllm_worker(fake, tmp_path, **flags):  # type: ignore[no-untyped-def]
    """A worker on a free loopback port in front of the fake vLLM server."""
    return run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                      backend_url=url_of(fake), **flags)


def _content(body: bytes) -> str:
    return json.loads(body)["choices"][0]["message"]["content"]


async def test_one_connection_mixes_both_lanes(fake_openai_server, tmp_path):
    async with vllm_worker(fake_openai_server, tmp_path) as urls:
        reader, writer = await open_raw(urls["worker"])
        writer.write(post())
        status, h1, body = await read_reply(reader)
        assert status == 200 and on_fast_lane(h1)
        assert _content(body) == " w0 w1 w2 w3 w4"
        assert h1["x-request-id"] and h1["date"] and h1["content-type"].startswith("application/json")
        # a route the lane does not take: the same connection goes over to aiohttp
        writer.write(GET_MODELS)
        status, h2, body = await read_reply(reader)
        assert status == 200 and not on_fast_lane(h2)
        assert [m["id"] for m in json.loads(body)["data"]] == MODELS
        # and aiohttp still serves the inference route on it
        writer.write(post())
        status, h3, body = await read_reply(reader)
        assert status == 200 and not on_fast_lane(h3) and _content(body) == " w0 w1 w2 w3 w4"
        assert len({h1["x-request-id"], h2["x-request-id"], h3["x-request-id"]}) == 3
        writer.close()


async def test_pipelined_requests_are_answered_in_order(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[KNOBS]
    async with vllm_worker(fake_openai_server, tmp_path) as urls:
        reader, writer = await open_raw(urls["worker"])
        bodies = [json.dumps({"model": MODELS[0], "n_seq": i,
                              "messages": [{"role": "user", "content": "hi"}]}).encode()
                  for i in range(3)]
        # three requests in one write, then a pipelined hand-over behind a fast one
        writer.write(b"".join(post(body=b) for b in bodies) + post() + GET_MODELS)
        for _ in range(4):
            status, headers, _ = await read_reply(reader)
            assert status == 200 and on_fast_lane(headers)
        status, headers, body = await read_reply(reader)
        assert status == 200 and not on_fast_lane(headers) and b"object" in body
        writer.close()
    seqs = [json.loads(r["body"]).get("n_seq") for r in knobs.requests]
    assert seqs[:3] == [0, 1, 2]  # sent upstream in the order they came


async def test_what_the_lane_does_not_take_goes_to_aiohttp(fake_openai_server, tmp_path):
    async with vllm_worker(fake_openai_server, tmp_path) as urls:
        # chunked request body
        reader, writer = await open_raw(urls["worker"])
        writer.write(chunked_post())
        status, headers, body = await read_reply(reader)
        assert status == 200 and not on_fast_lane(headers) and _content(body)
        writer.close()
        # Expect: 100-continue
        reader, writer = await open_raw(urls["worker"])
        writer.write(post(body=b"", extra=b"Expect: 100-continue\r\n")
                     .replace(b"Content-Length: 0", b"Content-Length: %d" % len(CHAT)))
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(CHAT)
        status, headers, body = await read_reply(reader)
        assert status == 200 and _content(body)
        writer.close()
        # HTTP/1.0, an escaped path: aiohttp answers
        for raw in (post(version=b"HTTP/1.0"), post(path="/v1/chat%2Fcompletions")):
            reader, writer = await open_raw(urls["worker"])
            writer.write(raw)
            status, headers, body = await read_reply(reader)
            assert status == 200 and not on_fast_lane(headers) and _content(body), raw[:40]
            writer.close()
        # bare-LF lines: no blank CRLF line will come; aiohttp answers at once (400)
        reader, writer = await open_raw(urls["worker"])
        writer.write(post().replace(b"\r\n", b"\n"))
        status, headers, _ = await read_reply(reader)
        assert status == 400 and not on_fast_lane(headers)
        writer.close()


async def test_limits_on_the_lane(fake_openai_server, tmp_path):
    async with vllm_worker(fake_openai_server, tmp_path, max_body_size=4096,
                           body_timeout=300) as urls:
        # over the body limit: 413, OpenAI-shaped
        reader, writer = await open_raw(urls["worker"])
        writer.write(post(body=b"{" + b" " * 5000 + b"}"))
        status, _, body = await read_reply(reader)
        assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"
        writer.close()
        # a body that stops arriving: 408 after body_timeout, then the connection closes
        reader, writer = await open_raw(urls["worker"])
        writer.write(post()[:-10])
        status, headers, body = await read_reply(reader)
        assert status == 408 and on_fast_lane(headers)
        assert json.loads(body)["error"]["code"] == "body_timeout"
        assert headers["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["worker"] + "/v1/chat/completions", data=CHAT) as r:
                assert r.status == 200


async def test_the_last_reply_says_connection_close_on_both_lanes(fake_openai_server,
                                                                 tmp_path):
    """One rule whichever lane answers, whole reply or streamed: a reply after which the
    connection closes says so (`Connection: close`), arrives whole, and the connection then
    closes. HTTP/1.0 (aiohttp's) closes unless the client asked for keep-alive, 1.0's own
    rule: then the reply says `Connection: keep-alive` and the connection stays."""
    stream = json.dumps({"model": MODELS[0], "stream": True,
                         "messages": [{"role": "user", "content": "hi"}]}).encode()
    close = b"Connection: close\r\n"
    async with vllm_worker(fake_openai_server, tmp_path) as urls:

        async def last_reply(raw: bytes, lane: bool) -> tuple[dict[str, str], bytes]:
            reader, writer = await open_raw(urls["worker"])
            writer.write(raw)
            status, headers = await read_head(reader)
            assert status == 200 and on_fast_lane(headers) is lane
            rest = await asyncio.wait_for(reader.read(), 2)  # all of it, up to the close
            writer.close()
            if "content-length" in headers:
                assert len(rest) == int(headers["content-length"]) and _content(rest)
            else:
                assert b"data: [DONE]" in rest
            return headers, rest

        for body in (CHAT, stream):
            for raw, lane in ((post(body=body, extra=close), True),
                              (chunked_post(body, close), False)):
                headers, _ = await last_reply(raw, lane)
                assert headers["connection"] == "close", (lane, body[-20:])
            headers, _ = await last_reply(post(body=body, version=b"HTTP/1.0"), False)
            assert headers.get("connection", "close") == "close"
        reader, writer = await open_raw(urls["worker"])
        for _ in range(2):
            writer.write(post(version=b"HTTP/1.0", extra=b"Connection: keep-alive\r\n"))
            status, headers, body = await read_reply(reader)
            assert status == 200 and headers["connection"] == "keep-alive" and _content(body)
        writer.close()


async def test_a_big_reply_to_a_slow_reader_arrives_whole(fake_openai_server, tmp_path):
    """~400 KB, over the whole-body limit: relayed as it comes, with a Content-Length, to a
    reader that starts late and reads in pieces."""
    fake_openai_server.app[KNOBS].tokens = 60_000
    async with vllm_worker(fake_openai_server, tmp_path) as urls:
        reader, writer = await open_raw(urls["worker"])
        writer.write(post())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b" 200 " in head.split(b"\r\n")[0]
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert length > 256 * 1024
        await asyncio.sleep(0.3)  # not reading yet
        got = bytearray()
        while len(got) < length:
            got += await asyncio.wait_for(reader.read(16384), 5)
        assert len(got) == length
        assert _content(bytes(got)).split()[-1] == "w59999"
        writer.close()


async def test_the_lane_waits_while_the_clients_socket_is_full():
    """Back-pressure on the lane's writes (a loopback socket's buffers are too big to fill
    in a test, so on the protocol itself): send() waits from pause_writing() to
    resume_writing(), and a client that leaves meanwhile ends the wait with an error."""
    from types import SimpleNamespace

    from eldric.serve.protocol import FastProtocol

    class Transport:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, data: bytes) -> None:
            self.data += data

        def is_closing(self) -> bool:
            return False

    loop = asyncio.get_running_loop()
    proto = FastProtocol(SimpleNamespace(loop=loop, conns=set()))  # type: ignore[arg-type]
    proto.connection_made(Transport())  # type: ignore[arg-type]
    proto.pause_writing()
    sending = asyncio.ensure_future(proto.send(b"x" * 10))
    await asyncio.sleep(0.05)
    assert not sending.done() and bytes(proto.transport.data) == b"x" * 10
    proto.resume_writing()
    await asyncio.wait_for(sending, 1)
    proto.pause_writing()
    sending = asyncio.ensure_future(proto.send(b"y"))
    await asyncio.sleep(0.01)
    proto.connection_lost(None)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(sending, 1)


async def test_edge_lane_takes_the_cookie_and_passes_the_query(fake_openai_server, tmp_path):
    """The edge's fast lane: a browser's cookie instead of a header, the query string
    passed on, the client's credentials not."""
    knobs = fake_openai_server.app[KNOBS]
    async with run_eldric("edge", tmp_path, no_tls=True, http_port=0, bind="127.0.0.1",
                          routers=url_of(fake_openai_server), api_key=["sk-cookie"]) as urls:
        reader, writer = await open_raw(urls["edge"])
        writer.write(post(path="/v1/chat/completions?trace=1",
                          extra=b"Cookie: theme=dark; eldric_key=sk-cookie\r\n"))
        status, headers, body = await read_reply(reader)
        assert status == 200 and on_fast_lane(headers) and _content(body)
        assert headers["x-ratelimit-limit"]
        writer.write(post(extra=b"Cookie: eldric_key=wrong\r\n"))
        status, headers, body = await read_reply(reader)
        assert status == 401 and on_fast_lane(headers)
        assert json.loads(body)["error"]["type"]
        writer.close()
    seen = knobs.requests[-1]
    assert seen["query"] == "trace=1"
    assert "Cookie" not in seen["headers"] and "Authorization" not in seen["headers"]


async def test_a_malformed_head_gets_an_openai_error_on_every_role(fake_openai_server,
                                                                  tmp_path):
    """Not HTTP: one JSON 400 (not aiohttp's plain text), then the connection closes; on a
    fast path and off it, on a role with fast routes and on one without (controller)."""
    async with vllm_worker(fake_openai_server, tmp_path) as w, \
            run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as c:
        for url in (w["worker"], c["controller"]):
            for raw in (post(extra=b"Bad Header Line\r\n"),
                        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                        b"GET /health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"):
                reader, writer = await open_raw(url)
                writer.write(raw)
                status, headers, body = await read_reply(reader)
                assert status == 400, (url, raw[:30])
                err = json.loads(body)["error"]
                assert err["code"] == "bad_http_request" and "malformed" in err["message"]
                assert headers["connection"] == "close"
                assert await asyncio.wait_for(reader.read(), 2) == b""
                writer.close()
            async with aiohttp.ClientSession() as s:
                async with s.get(url + "/health") as r:
                    assert r.status == 200


async def test_idle_keep_alive_connections_are_closed_on_both_lanes(fake_openai_server,
                                                                   tmp_path):
    """--keepalive-timeout, one value for both lanes: an idle connection is closed after it
    (not before) whoever owns it: after a reply on the lane, after one from aiohttp (the
    connection was handed over), with half a head sent, and one that never sent a byte."""
    timeout = 0.3
    async with vllm_worker(fake_openai_server, tmp_path,
                           keepalive_timeout=int(timeout * 1000)) as urls:

        async def idle_for(first: bytes | None, lane: bool | None) -> float:
            reader, writer = await open_raw(urls["worker"])
            if first:
                writer.write(first)
            if lane is not None:
                status, headers, _ = await read_reply(reader)
                assert status == 200 and on_fast_lane(headers) is lane
                assert "connection" not in headers  # it was not the last reply
            since = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
            return time.monotonic() - since

        idle = await asyncio.gather(idle_for(post(), True), idle_for(GET_MODELS, False),
                                    idle_for(b"POST /v1/chat/compl", None),
                                    idle_for(None, None))
        # closed once the timeout ran out, by the lane's sweeper (a quarter of it late at
        # most) or aiohttp's timer; the slack above is a shared machine's
        assert all(timeout * 0.9 <= t < timeout * 4 for t in idle), idle


def test_raw_headers_read_like_aiohttps():
    from eldric.serve.request import RawHeaders

    h = RawHeaders(((b"Host", b"x"), (b"X-Request-ID", b"abc"), (b"cookie", b"a=1"),
                    (b"Cookie", b"b=2"), (b"X-Name", "zoë".encode())))
    assert h.get("x-request-id") == "abc" and h["HOST"] == "x" and h["x-name"] == "zoë"
    assert "COOKIE" in h and "nope" not in h and h.get("nope", "d") == "d"
    assert h.getall("Cookie") == ["a=1", "b=2"]
    assert h.items()[2:4] == [("cookie", "a=1"), ("Cookie", "b=2")]
    assert len(h) == 5
    try:
        h["nope"]
    except KeyError:
        pass
    else:
        raise AssertionError("a missing header must raise KeyError")


async def test_fragments_and_mangled_heads_never_hang_or_fail(fake_openai_server, tmp_path):
    """Requests arriving in random pieces are answered whole; 300 mangled requests (bytes
    flipped, dropped, CR/LF/colon/NUL inserted) each get an answer that is not a 5xx, or a
    close, within 3 s (a body that never completes: the body timeout; a head that never
    ends: the keep-alive timeout); the worker serves on."""
    import random

    rng = random.Random(20261122)
    async with vllm_worker(fake_openai_server, tmp_path, body_timeout=150,
                           keepalive_timeout=150) as urls:
        for _ in range(30):
            reader, writer = await open_raw(urls["worker"])
            for _ in range(3):
                raw = post()
                cuts = sorted(rng.sample(range(1, len(raw)), 5))
                for a, b in zip([0, *cuts], [*cuts, len(raw)]):
                    writer.write(raw[a:b])
                    await writer.drain()
                    await asyncio.sleep(0.001)
                status, headers, body = await read_reply(reader)
                assert status == 200 and on_fast_lane(headers) and _content(body)
            writer.close()
        statuses: dict[int, int] = {}
        mangled = []
        for _ in range(300):
            raw = bytearray(post())
            for _ in range(rng.randint(1, 6)):
                pos = rng.randrange(len(raw))
                op = rng.random()
                if op < 0.4:
                    raw[pos] = rng.randrange(256)
                elif op < 0.7:
                    del raw[pos]
                else:
                    raw[pos:pos] = bytes([rng.choice(b"\r\n :\x00")])
            mangled.append(bytes(raw))

        in_flight = asyncio.Semaphore(20)

        async def one(raw: bytes) -> None:
            async with in_flight:
                await mangle(raw)

        async def mangle(raw: bytes) -> None:
            reader, writer = await open_raw(urls["worker"])
            writer.write(raw)  # no FIN after it: that would be the client leaving
            data = await asyncio.wait_for(_reply_or_close(reader), 3)
            writer.close()
            found = [int(s) for s in re.findall(rb"HTTP/1\.[01] (\d{3}) ", data)]
            assert all(s < 500 for s in found), (raw[:80], data[:200])
            assert b"Traceback" not in data
            for s in found or [0]:  # 0: closed without an answer
                statuses[s] = statuses.get(s, 0) + 1

        # Twenty connections at a time: many wait out a 150 ms timeout, which one after
        # another made most of the test's time; each still has its own 3 s deadline.
        await asyncio.gather(*(one(raw) for raw in mangled))
        assert statuses.get(400, 0) > 50 and statuses.get(200, 0) >= 5, statuses
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["worker"] + "/v1/chat/completions", data=CHAT) as r:
                assert r.status == 200


async def _reply_or_close(reader: asyncio.StreamReader) -> bytes:
    """What arrives until one whole reply (its head and Content-Length bytes) is there, or
    the connection closes."""
    data = b""
    while chunk := await reader.read(65536):
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        if sep and length and len(body) >= int(length.group(1)):
            break
    return data


async def test_a_big_reply_cut_by_the_backend_is_cut_for_the_client(tmp_path):
    """A JSON reply too big to buffer is relayed as it comes; when the backend dies in the
    middle of it, the client's connection is dropped (an incomplete body, never one that
    looks whole), and the worker serves on."""
    size = 400_000

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            if head.startswith(b"GET"):
                body = json.dumps({"object": "list", "data": [
                    {"id": MODELS[0], "object": "model", "owned_by": "vllm"}]}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n{\"x\": \"" % size + b"y" * 100_000)
            await writer.drain()
            writer.close()
            return

    server = await asyncio.start_server(backend, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                              backend_url=f"http://127.0.0.1:{port}") as urls:
            reader, writer = await open_raw(urls["worker"])
            writer.write(post())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % size in head
            rest = await asyncio.wait_for(reader.read(), 5)  # up to the close
            assert 100_000 <= len(rest) < size
            writer.close()
            async with aiohttp.ClientSession() as s:  # still serving (the next reply too)
                async with s.get(urls["worker"] + "/health") as r:
                    assert r.status in (200, 503)
    finally:
        server.close()


async def test_an_app_that_turns_the_lane_off_says_so(fake_openai_server, tmp_path):
    """The edge with cors_origins (a middleware of its own) serves everything on aiohttp:
    one start-up line names the role, why, and what it costs. Without it, no such line."""
    from structlog.testing import capture_logs

    flags = dict(no_tls=True, http_port=0, bind="127.0.0.1",
                 routers=url_of(fake_openai_server), api_key="k")
    with capture_logs() as logs:
        async with run_eldric("edge", tmp_path / "a", **flags) as urls:
            reader, writer = await open_raw(urls["edge"])
            writer.write(post(extra=b"Authorization: Bearer k\r\n"))
            assert on_fast_lane((await read_reply(reader))[1])
            writer.close()
    assert not [e for e in logs if e["event"] == "fast_lane_off"]
    with capture_logs() as logs:
        async with run_eldric("edge", tmp_path / "b", cors_origins="https://app.example",
                              **flags) as urls:
            reader, writer = await open_raw(urls["edge"])
            writer.write(post(extra=b"Authorization: Bearer k\r\n"))
            assert not on_fast_lane((await read_reply(reader))[1])
            writer.close()
    (line,) = [e for e in logs if e["event"] == "fast_lane_off"]
    assert line["role"] == "edge" and "cors" in line["why"] and "CPU" in line["cost"]
