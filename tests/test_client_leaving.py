"""A client that goes away stops the backend, at every hop that relays, on both lanes.

"Goes away" is a reset (RST) or a normal close (FIN: shutdown of its sending side, as
eldric's own upstream client does); before the first byte of the reply (the backend still
"reading the prompt") and mid-stream. Each case asserts what a user pays for: the backend
saw its connection close within 2 s, every hop counted the disconnect, and a client that
only half-closed sees the connection end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import (leave, metric, open_raw, raw_post, read_head, run_cloud,
                            run_eldric, until, url_of)
from tests.fakes.openai_server import KNOBS, MODELS

PATH = "/v1/chat/completions"
STREAM = json.dumps({"model": MODELS[0], "stream": True,
                     "messages": [{"role": "user", "content": "hi"}]}).encode()
LOOP = "127.0.0.1"
KEY = b"Authorization: Bearer k\r\n"  # the edge's key; the other hops ignore it


@contextlib.asynccontextmanager
async def relays(front: str, backend: str, tmp_path, **front_flags) -> AsyncIterator[dict[str, str]]:
    """The hops from `front` down to the backend: {role: url}. "worker", "router" (→ worker),
    "edge" (→ router → worker), "cloud" (the backend as its OpenAI-compatible provider)."""
    # a failing test must not wait out a held reply at shutdown
    front_flags.setdefault("grace_period", 500)
    async with contextlib.AsyncExitStack() as stack:
        if front == "cloud":
            yield await stack.enter_async_context(
                run_cloud(tmp_path, f"fake:{backend}/v1", **front_flags))
            return
        urls = {}
        order = ["worker", "router", "edge"]
        for role in order[:order.index(front) + 1]:
            flags = front_flags if role == front else {"grace_period": 500}
            if role == "worker":
                ctx = run_eldric("worker", tmp_path / role, backend="vllm", port=0, bind=LOOP,
                                 backend_url=backend, **flags)
            elif role == "router":
                ctx = run_eldric("router", tmp_path / role, port=0, bind=LOOP,
                                 workers=urls["worker"], **flags)
            else:
                ctx = run_eldric("edge", tmp_path / role, no_tls=True, http_port=0, bind=LOOP,
                                 routers=urls["router"], api_key="k", **flags)
            urls.update(await stack.enter_async_context(ctx))
        yield urls


async def _counted(urls: dict[str, str], n: float = 1, ssl=True) -> None:  # type: ignore[no-untyped-def]
    """Every hop's eldric_client_disconnects_total moved to `n`."""
    for role, url in urls.items():
        series = f'eldric_client_disconnects_total{{role="{role}"}}'

        async def seen(url=url, series=series) -> bool:
            return await metric(url, series, ssl) == n

        await until(seen, timeout=3)


async def _closed_for_client(reader: asyncio.StreamReader) -> bytes:
    """What the client still got, up to the close (which must come within 2 s)."""
    data = b""
    while chunk := await asyncio.wait_for(reader.read(65536), 2):
        data += chunk
    return data


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize("when", ["before_first_byte", "mid_stream"])
@pytest.mark.parametrize("front", ["worker", "router", "edge", "cloud"])
async def test_a_client_leaving_stops_the_backend(front, when, how, fake_openai_server,
                                                  tmp_path):
    knobs = fake_openai_server.app[KNOBS]
    if when == "before_first_byte":
        knobs.hold = 30.0  # far beyond the test: only a closed connection ends it
    else:
        knobs.tokens, knobs.delay = 400, 0.05  # a 20 s stream
    async with relays(front, url_of(fake_openai_server), tmp_path) as urls:
        reader, writer = await open_raw(urls[front])
        writer.write(raw_post(PATH, STREAM, KEY))
        if when == "before_first_byte":
            await until(lambda: knobs.requests)  # the backend has it and is silent
        else:
            status, _ = await read_head(reader)
            assert status == 200
            await asyncio.wait_for(reader.readuntil(b" w1"), 5)
        left = time.monotonic()
        leave(writer, how)
        await asyncio.wait_for(knobs.disconnected.wait(), 2)
        assert knobs.cancelled_at - left < 2
        if how == "fin":
            rest = await _closed_for_client(reader)
            if when == "before_first_byte":
                assert rest == b""  # no reply, just the close
        writer.close()
        await _counted(urls)
        assert len(knobs.requests) == 1  # nobody retried it elsewhere


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_a_client_leaving_on_the_aiohttp_lane(how, fake_openai_server, tmp_path):
    """A request the fast lane hands to aiohttp (a chunked body) on a worker, and every
    request on an edge whose CORS middleware keeps all of them on aiohttp: the same."""
    knobs = fake_openai_server.app[KNOBS]
    knobs.hold = 30.0
    chunked = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: "
               b"chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (KEY, len(STREAM), STREAM))
    async with relays("worker", url_of(fake_openai_server), tmp_path / "w") as urls:
        reader, writer = await open_raw(urls["worker"])
        writer.write(chunked)
        await until(lambda: knobs.requests)
        leave(writer, how)
        await asyncio.wait_for(knobs.disconnected.wait(), 2)
        if how == "fin":
            assert await _closed_for_client(reader) == b""
        writer.close()
        await _counted(urls)
    knobs.disconnected.clear()
    async with relays("edge", url_of(fake_openai_server), tmp_path / "e",
                      cors_origins="https://app.example") as urls:
        reader, writer = await open_raw(urls["edge"])
        writer.write(raw_post(PATH, STREAM, KEY))
        await until(lambda: len(knobs.requests) == 2)
        leave(writer, how)
        await asyncio.wait_for(knobs.disconnected.wait(), 2)
        writer.close()
        await _counted(urls)


async def test_pipelined_requests_behind_a_client_that_left_are_dropped(fake_openai_server,
                                                                       tmp_path):
    """FIN after two pipelined requests while the first is with the backend: the first is
    cancelled, the second never starts (aiohttp drops them the same way)."""
    knobs = fake_openai_server.app[KNOBS]
    knobs.hold = 30.0
    async with relays("worker", url_of(fake_openai_server), tmp_path) as urls:
        reader, writer = await open_raw(urls["worker"])
        writer.write(raw_post(PATH, STREAM) * 2)
        await until(lambda: knobs.requests)
        leave(writer, "fin")
        await asyncio.wait_for(knobs.disconnected.wait(), 2)
        assert await _closed_for_client(reader) == b""
        writer.close()
        await _counted(urls)
        await asyncio.sleep(0.2)
        assert len(knobs.requests) == 1


async def test_a_client_leaving_while_its_body_arrives(fake_openai_server, tmp_path):
    """FIN in the middle of a request body: nothing reached the backend, nothing will; the
    connection closes at once (not after the body timeout) and the worker serves on."""
    knobs = fake_openai_server.app[KNOBS]
    async with relays("worker", url_of(fake_openai_server), tmp_path) as urls:
        for how in ("fin", "rst"):
            reader, writer = await open_raw(urls["worker"])
            writer.write(raw_post(PATH, STREAM)[:-10])
            await asyncio.sleep(0.05)
            leave(writer, how)
            if how == "fin":
                assert await _closed_for_client(reader) == b""
            writer.close()
        reader, writer = await open_raw(urls["worker"])
        writer.write(raw_post(PATH, STREAM))
        status, _ = await read_head(reader)
        assert status == 200 and len(knobs.requests) == 1
        writer.close()


async def test_a_router_that_gives_up_stops_the_backend(fake_openai_server, tmp_path):
    """The router's first-byte timeout closes its connection to the worker (a FIN, from
    eldric's own upstream client): the worker takes that as its client leaving and stops
    the backend, instead of waiting for a reply nobody will read."""
    knobs = fake_openai_server.app[KNOBS]
    knobs.hold = 30.0
    async with relays("router", url_of(fake_openai_server), tmp_path,
                      first_byte_timeout=300) as urls:
        reader, writer = await open_raw(urls["router"])
        writer.write(raw_post(PATH, STREAM))
        status, _ = await read_head(reader)
        assert status in (503, 504)  # it gave up on the silent worker
        await asyncio.wait_for(knobs.disconnected.wait(), 2)
        writer.close()
        await until(lambda: metric(urls["worker"],
                                   'eldric_client_disconnects_total{role="worker"}'))


async def test_a_tls_client_closing_normally_stops_the_backend(fake_openai_server, tmp_path):
    """The edge's default, HTTPS: a client that closes normally (TLS close_notify, then
    FIN) before the first byte stops the backend too."""
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "edge.pem"))
    knobs = fake_openai_server.app[KNOBS]
    knobs.hold = 30.0
    async with relays("router", url_of(fake_openai_server), tmp_path) as urls, \
            run_eldric("edge", tmp_path / "edge", port=0, bind=LOOP, routers=urls["router"],
                       cert=str(tmp_path / "edge.pem"), key=str(tmp_path / "edge.pem"),
                       api_key="k", grace_period=500) as edge:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        host, port = edge["edge"].removeprefix("https://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
        writer.write(raw_post(PATH, STREAM, KEY))
        await until(lambda: knobs.requests)
        writer.close()  # close_notify, then the socket closes
        await asyncio.wait_for(knobs.disconnected.wait(), 2)
        await _counted({**urls, **edge}, ssl=ctx)
