"""Downloads from the model registry: the whole file with its sha256 as the ETag, one
byte range (so an interrupted download resumes where it stopped), If-Range and
If-None-Match against that ETag, HEAD, 416 outside the file, 404 for an unknown or
deleted model."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from tests.conftest import open_raw, read_head
from tests.models.gguf_file import small_model
from tests.models.registry_helpers import API, CLUSTER, auth, controller, upload_raw

DATA = small_model(data=3_000_000)
SHA = hashlib.sha256(DATA).hexdigest()
ETAG = f'"{SHA}"'


async def _get(s, url, **headers):  # type: ignore[no-untyped-def]
    async with s.get(f"{url}{API}/m/download", headers={**auth(CLUSTER), **headers}) as r:
        return r.status, r.headers, await r.read()


@pytest.fixture
async def served(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        status, model = await upload_raw(s, c.url, DATA, name="m")
        assert status == 201
        yield c, s, model


async def test_whole_file_with_its_sha256_etag(served):
    c, s, model = served
    status, headers, body = await _get(s, c.url)
    assert status == 200 and body == DATA
    assert headers["ETag"] == ETAG and headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Length"] == str(len(DATA))
    assert 'filename="m.gguf"' in headers["Content-Disposition"]
    async with s.get(f"{c.url}{API}/{model['id']}/download", headers=auth(CLUSTER)) as r:
        assert r.status == 200 and await r.read() == DATA  # by id too


@pytest.mark.parametrize("rng,start,end", [("bytes=1000-", 1000, len(DATA)),
                                           ("bytes=0-0", 0, 1),
                                           ("bytes=10-19", 10, 20),
                                           ("bytes=-100", len(DATA) - 100, len(DATA)),
                                           (f"bytes=5-{len(DATA) * 2}", 5, len(DATA))])
async def test_one_range(served, rng, start, end):
    c, s, _ = served
    status, headers, body = await _get(s, c.url, Range=rng)
    assert status == 206 and body == DATA[start:end]
    assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert headers["ETag"] == ETAG


@pytest.mark.parametrize("rng", [f"bytes={len(DATA)}-", "bytes=-0", "bytes=9-3",
                                 "bytes=0-1,5-6", "lines=1-2"])
async def test_unsatisfiable_ranges(served, rng):
    c, s, _ = served
    status, headers, body = await _get(s, c.url, Range=rng)
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(DATA)}"
    assert b'"code":"range_not_satisfiable"' in body


async def test_if_range_and_if_none_match(served):
    c, s, _ = served
    status, _, body = await _get(s, c.url, Range="bytes=100-", **{"If-Range": ETAG})
    assert status == 206 and body == DATA[100:]
    # another file's ETag (the registry's file changed under that name): the whole file
    status, _, body = await _get(s, c.url, Range="bytes=100-", **{"If-Range": '"other"'})
    assert status == 200 and body == DATA
    status, headers, body = await _get(s, c.url, **{"If-None-Match": ETAG})
    assert status == 304 and body == b"" and headers["ETag"] == ETAG


async def test_head(served):
    c, s, _ = served
    async with s.head(f"{c.url}{API}/m/download", headers=auth(CLUSTER)) as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(len(DATA))
        assert r.headers["ETag"] == ETAG


async def test_an_interrupted_download_resumes(served):
    """A client that read part of the file and lost the connection asks for the rest
    with Range and If-Range: the two parts are the file."""
    c, s, _ = served
    reader, writer = await open_raw(c.url)
    writer.write(f"GET {API}/m/download HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {CLUSTER}\r\n\r\n".encode())
    status, headers = await read_head(reader)
    assert status == 200
    got = await reader.readexactly(1_234_567)
    writer.transport.abort()  # the connection is lost mid-file
    status, _, rest = await _get(s, c.url, Range=f"bytes={len(got)}-",
                                 **{"If-Range": headers["etag"]})
    assert status == 206
    assert hashlib.sha256(got + rest).hexdigest() == SHA
    status, _, body = await _get(s, c.url)  # the server is fine after the cut
    assert status == 200 and body == DATA


async def test_unknown_and_deleted_models(served):
    c, s, model = served
    async with s.get(f"{c.url}{API}/nope/download", headers=auth(CLUSTER)) as r:
        assert (r.status, (await r.json())["error"]["code"]) == (404, "registry_model_not_found")
    async with s.get(f"{c.url}{API}/nope", headers=auth(CLUSTER)) as r:
        assert (r.status, (await r.json())["error"]["code"]) == (404, "registry_model_not_found")
    async with s.delete(f"{c.url}{API}/m", headers=auth()) as r:
        assert r.status == 200
    status, _, body = await _get(s, c.url)
    assert status == 404 and b"registry_model_not_found" in body
    assert not (c.dir / model["id"]).exists()
