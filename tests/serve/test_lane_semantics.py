"""One set of semantics on both lanes: what a client sees does not depend on whether the
fast lane or aiohttp answered. Raw sockets against real eldric processes; which lane
answered is asserted (conftest.on_fast_lane) so each case runs on both.

- a web.Response without a body (aiohttp's rules: Content-Length 0, none on a 204);
- headers a Connection header names are this hop's (RFC 9110 §7.6.1): dropped when
  relayed, towards the upstream and back;
- header bytes are relayed as they came (a byte outside ASCII is not re-encoded).
"""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from eldric import app as eldric_app
from eldric.config import ProcessConfig, RoleConfig
from eldric.registry import Role
from eldric.serve.server import fast_post

from tests.conftest import (on_fast_lane, open_raw, raw_post, read_head, read_request,
                            run_eldric)

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


def chunked(path: str, body: bytes, extra: bytes = b"") -> bytes:
    """The same POST with a chunked body: the lane hands it to aiohttp."""
    return (b"POST %s HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n0\r\n\r\n" % (path.encode(), extra, len(body), body))


def both(path: str, body: bytes, extra: bytes = b"") -> list[tuple[bool, bytes]]:
    """(on the fast lane?, request) for each lane."""
    return [(True, raw_post(path, body, extra)), (False, chunked(path, body, extra))]


class RawBackend:
    """An OpenAI-compatible upstream written on a socket, so a test controls every byte of
    its replies and sees every byte of the requests."""

    def __init__(self, reply_head: bytes, reply_body: bytes, status: bytes = b"200 OK") -> None:
        self.reply_head = reply_head  # header lines after the status line
        self.reply_body = reply_body
        self.status = status
        self.heads: list[bytes] = []  # the POST heads received

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head, _ = await read_request(reader)
                if head.startswith(b"GET"):
                    body = b'{"object": "list", "data": [{"id": "m", "object": "model"}]}'
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    self.heads.append(head)
                    length = b"Content-Length: %d\r\n" % len(self.reply_body) if self.reply_body else b""
                    writer.write(b"HTTP/1.1 %s\r\n%s%s\r\n%s"
                                 % (self.status, self.reply_head, length, self.reply_body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def _exchange(url: str, raw: bytes) -> tuple[int, bytes, bytes]:
    """(status, the reply's head as bytes, body) of one request on a fresh connection."""
    reader, writer = await open_raw(url)
    writer.write(raw)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(_headers(head).get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    writer.close()
    return int(head.split(b" ")[1]), head, body


async def test_headers_named_by_connection_are_dropped_both_ways_on_both_lanes(tmp_path):
    backend = RawBackend(b"Content-Type: application/json\r\nConnection: keep-alive, X-Up-Hop"
                         b"\r\nX-Up-Hop: for the worker only\r\nX-Up-Keep: 1\r\n", b"{}")
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=await backend.start()) as urls:
        extra = b"Connection: keep-alive, x-hop\r\nX-Hop: for the worker only\r\nX-Keep: 1\r\n"
        for lane, raw in both("/v1/chat/completions", CHAT, extra):
            status, head, _ = await _exchange(urls["worker"], raw)
            assert status == 200 and on_fast_lane(_headers(head)) is lane
            assert b"X-Up-Keep: 1" in head and b"X-Up-Hop" not in head, lane
            sent = backend.heads[-1]
            assert b"X-Keep: 1" in sent and b"X-Hop" not in sent and b"x-hop" not in sent
    backend.server.close()


async def test_header_bytes_are_relayed_as_received(tmp_path):
    """A non-ASCII byte in a header goes upstream unchanged on both lanes, and comes back
    unchanged on the lane. aiohttp writes headers as UTF-8 text: valid UTF-8 comes back as
    it was; a Latin-1 byte comes back as that character in UTF-8 (aiohttp cannot write
    the byte), never as a 500."""
    backend = RawBackend(b"Content-Type: application/json\r\nX-Utf: caf\xc3\xa9\r\n"
                         b"X-Latin: caf\xe9\r\n", b"{}")
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=await backend.start()) as urls:
        for lane, raw in both("/v1/chat/completions", CHAT, b"X-Name: zo\xc3\xab \xff\r\n"):
            status, head, _ = await _exchange(urls["worker"], raw)
            assert status == 200 and on_fast_lane(_headers(head)) is lane
            assert b"\r\nX-Name: zo\xc3\xab \xff\r\n" in backend.heads[-1], lane
            assert b"\r\nX-Utf: caf\xc3\xa9\r\n" in head
            latin = b"caf\xe9" if lane else b"caf\xc3\xa9"
            assert b"\r\nX-Latin: " + latin + b"\r\n" in head, lane
    backend.server.close()


async def test_an_upstream_204_is_relayed_without_a_body_on_both_lanes(tmp_path):
    """No body, no framing (it used to go out chunked on the lane: a `0` chunk the client
    reads as the start of the next reply), and the connection serves on."""
    backend = RawBackend(b"X-Up: 1\r\n", b"", status=b"204 No Content")
    async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                          backend_url=await backend.start()) as urls:
        for lane, raw in both("/v1/chat/completions", CHAT):
            reader, writer = await open_raw(urls["worker"])
            writer.write(raw + raw)
            for _ in range(2):
                status, headers = await read_head(reader)
                assert status == 204 and on_fast_lane(headers) is lane and headers["x-up"]
                assert "content-length" not in headers and "transfer-encoding" not in headers
            writer.close()
    backend.server.close()


def _headers(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if line:
            k, _, v = line.partition(":")
            out[k.strip().lower()] = v.strip()
    return out


# ---------------------------------------------------------------- a role of the test's own


class _Bare(RoleConfig, forbid_unknown_fields=True, kw_only=True):
    pass


def _build(app: web.Application, cfg: _Bare) -> None:
    async def empty(request) -> web.Response:  # type: ignore[no-untyped-def]
        return web.Response(status=int(request.headers.get("X-Status", "200")))

    fast_post(app, "/v1/empty", empty)


async def test_a_bodiless_response_is_sent_as_aiohttp_sends_it(tmp_path):
    """A handler's web.Response without a body, on the fast lane, used to abort the
    connection. Now, as on aiohttp: Content-Length 0 (none on a 204 or 304, which have no
    body) and no Content-Type; the connection serves on."""
    role = Role(name="bare", port=0, config=_Bare, build=_build)
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    cfg = msgspec.convert({"port": 0, "bind_address": "127.0.0.1"}, _Bare)
    task = asyncio.ensure_future(eldric_app.serve(
        [role], {"bare": cfg}, ProcessConfig(data_dir=str(tmp_path)),
        on_ready=ready.set_result, stop=stop))
    url = (await asyncio.wait_for(ready, 10))["bare"]
    try:
        for status in (200, 204, 304, 201):
            seen = []
            for lane, raw in both("/v1/empty", b"{}", b"X-Status: %d\r\n" % status):
                reader, writer = await open_raw(url)
                writer.write(raw + raw)  # and the next request on the same connection
                for _ in range(2):
                    got, headers = await read_head(reader)
                    assert got == status and on_fast_lane(headers) is lane
                    if status in (204, 304):
                        assert "content-length" not in headers
                    else:
                        assert headers["content-length"] == "0"
                    assert "content-type" not in headers and "transfer-encoding" not in headers
                writer.close()
                seen.append(sorted(k for k in headers if k not in ("server", "date")))
            assert seen[0] == seen[1], (status, seen)  # the same headers on both lanes
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

