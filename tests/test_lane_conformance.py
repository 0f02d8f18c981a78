"""Request smuggling and framing vectors, each with the verdict eldric gives, on both
lanes: a path the fast lane takes (POST /v1/chat/completions on a worker with the mock
backend) and one it hands to aiohttp (the same route spelled with an escaped slash,
which the lane never takes and aiohttp routes to the same handler).

Verdicts: "ok" (the reply of a well-formed request: 200 with a completion), or 400 with
eldric's OpenAI-shaped `bad_http_request` and the connection closed. Where llhttp (the
lane's parser) and aiohttp's parser once disagreed, the safe verdict is the refusal and
both give it (docs/design-notes.md, "The fast lane": 300 headers and a 20 KB header
line, which the lane took and relayed, are refused as aiohttp refuses them; a broken
chunked body gets the JSON 400, not aiohttp's text or a 408).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import on_fast_lane, open_raw, read_head, read_reply, run_eldric

BODY = b'{"model": "eldric-mock", "messages": [{"role": "user", "content": "hi"}]}'
N = len(BODY)
PATHS = {True: b"/v1/chat/completions", False: b"/v1/chat%2Fcompletions"}  # lane: path


def post(path: bytes, extra: bytes = b"", *, length: bool = True, body: bytes = BODY,
         line: bytes | None = None) -> bytes:
    head = line or b"POST %s HTTP/1.1" % path
    framing = b"Content-Length: %d\r\n" % len(body) if length else b""
    return head + b"\r\nHost: x\r\nContent-Type: application/json\r\n" + framing + extra + \
        b"\r\n" + body


def chunked(path: bytes, data: bytes, te: bytes = b"chunked") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: %s\r\n\r\n%s" % (path, te, data))


GOOD_CHUNKS = b"%x\r\n%s\r\n0\r\n\r\n" % (N, BODY)

# name -> (request for a path, verdict)
VECTORS = {
    "plain": (lambda p: post(p), "ok"),
    "content-length and transfer-encoding": (
        lambda p: post(p, b"Transfer-Encoding: chunked\r\n"), 400),
    "two equal content-lengths": (lambda p: post(p, b"Content-Length: %d\r\n" % N), 400),
    "two different content-lengths": (lambda p: post(p, b"Content-Length: %d\r\n" % (N - 5)), 400),
    "content-length +26": (lambda p: post(p, b"Content-Length: +%d\r\n" % N, length=False), 400),
    "space before the colon": (
        lambda p: post(p, b"Content-Length : %d\r\n" % N, length=False), 400),
    "obs-fold": (lambda p: post(p, b"X-Folded: a\r\n b\r\n"), 400),
    "bare LF": (lambda p: post(p).replace(b"\r\n", b"\n"), 400),
    "NUL in a header": (lambda p: post(p, b"X-Nul: a\x00b\r\n"), 400),
    "transfer-encoding xchunked": (lambda p: chunked(p, GOOD_CHUNKS, b"xchunked"), 400),
    "lower-case http/1.1": (lambda p: post(p, line=b"POST %s http/1.1" % p), 400),
    "tab in the request line": (lambda p: post(p, line=b"POST\t%s HTTP/1.1" % p), 400),
    "a 20 KB header": (lambda p: post(p, b"X-Big: " + b"a" * 20_000 + b"\r\n"), 400),
    "300 headers": (lambda p: post(p, b"".join(b"X-H%d: v\r\n" % i for i in range(300))), 400),
    "a chunked body": (lambda p: chunked(p, GOOD_CHUNKS), "ok"),
    "a chunk size that is no number": (lambda p: chunked(p, b"zz\r\n%s\r\n0\r\n\r\n" % BODY), 400),
    "a chunk without its CRLF": (lambda p: chunked(p, b"%x\r\n%sXX0\r\n\r\n" % (N, BODY)), 400),
    "a chunk longer than said": (lambda p: chunked(p, b"5\r\n%s\r\n0\r\n\r\n" % BODY), 400),
}


@pytest.fixture
async def worker(tmp_path):
    async with run_eldric("worker", tmp_path, backend="mock", port=0, bind="127.0.0.1") as u:
        yield u["worker"]


async def _verdict(url: str, raw: bytes, split: int | None = None) -> tuple[object, bool]:
    """(verdict, answered by the fast lane) for one request on a fresh connection;
    `split`: send the first `split` bytes, then the rest a moment later."""
    reader, writer = await open_raw(url)
    try:
        if split is None:
            writer.write(raw)
        else:
            writer.write(raw[:split])
            await asyncio.sleep(0.1)
            writer.write(raw[split:])
        status, headers, body = await read_reply(reader)
        if status == 200:
            assert json.loads(body)["object"] == "chat.completion"
            return "ok", on_fast_lane(headers)
        assert json.loads(body)["error"]["code"] == "bad_http_request", body
        assert await asyncio.wait_for(reader.read(), 2) == b""  # and closed
        return status, on_fast_lane(headers)
    finally:
        writer.close()


@pytest.mark.parametrize("name", list(VECTORS))
async def test_each_vector_gets_its_verdict_on_both_lanes(worker, name):
    make, expected = VECTORS[name]
    for lane, path in PATHS.items():
        verdict, answered_on_lane = await _verdict(worker, make(path))
        assert verdict == expected, (name, lane)
        if verdict == "ok":
            assert answered_on_lane is (lane and name == "plain"), (name, lane)


async def test_a_broken_chunk_after_the_head_is_a_400_not_a_408(worker):
    """The head is taken, the handler waits for the body, then a chunk breaks: the
    request gets the JSON 400 at once (aiohttp queued its error behind the request, which
    waited out the body timeout)."""
    raw = chunked(PATHS[False], b"5\r\n{\"mod\r\nzz\r\n0\r\n\r\n")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await _verdict(worker, raw, split=raw.index(b"zz")) == (400, False)
    assert loop.time() - t0 < 2


async def test_pipelined_requests_on_both_lanes(worker):
    reader, writer = await open_raw(worker)
    writer.write(post(PATHS[True]) + post(PATHS[False]) + post(PATHS[True]))
    lanes = []
    for _ in range(3):
        status, headers, body = await read_reply(reader)
        assert status == 200 and json.loads(body)["object"] == "chat.completion"
        lanes.append(on_fast_lane(headers))
    assert lanes == [True, False, False]  # once handed over, the connection is aiohttp's
    writer.close()


async def test_http_1_0_is_answered_then_closed(worker):
    for path in PATHS.values():
        reader, writer = await open_raw(worker)
        writer.write(post(path, line=b"POST %s HTTP/1.0" % path))
        status, headers, body = await read_reply(reader)
        assert status == 200 and json.loads(body)["object"] == "chat.completion"
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()


async def test_expect_100_continue_on_both_paths(worker):
    for path in PATHS.values():
        reader, writer = await open_raw(worker)
        writer.write(post(path, b"Expect: 100-continue\r\n", body=b"")
                     .replace(b"Content-Length: 0", b"Content-Length: %d" % N))
        status, _ = await read_head(reader)
        assert status == 100
        writer.write(BODY)
        status, _, body = await read_reply(reader)
        assert status == 200 and json.loads(body)["object"] == "chat.completion"
        writer.close()
