"""Uploads the registry refuses, each with eldric's error code and nothing left behind:
too large (declared or streamed), no disk room, not a model file, the wrong format, a
checksum mismatch, a bad or taken name, a bad form, a stalled client, a client that
leaves mid-upload, and a caller without the admin key."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest

from tests.conftest import leave, open_raw, read_reply, until
from tests.models.gguf_file import small_model
from tests.models.registry_helpers import (ADMIN, API, CLUSTER, auth, controller, listed,
                                           upload_form, upload_raw)

DATA = small_model(data=3_000_000)


async def _nothing_left(c, s) -> None:  # type: ignore[no-untyped-def]
    assert await listed(s, c.url) == []
    assert c.leftovers() == []


async def test_too_large_declared_and_streamed(tmp_path):
    async with controller(tmp_path, registry_max_upload_size=1_000_000) as c, \
            aiohttp.ClientSession() as s:
        status, body = await upload_raw(s, c.url, DATA, name="big")
        assert (status, body["error"]["code"]) == (413, "upload_too_large")
        status, body = await upload_form(s, c.url, DATA, name="big")
        assert (status, body["error"]["code"]) == (413, "upload_too_large")

        async def chunked():  # no Content-Length: found out while streaming
            for i in range(0, len(DATA), 256 * 1024):
                yield DATA[i:i + 256 * 1024]

        try:
            status, body = await upload_raw(s, c.url, chunked(), name="big")
            assert (status, body["error"]["code"]) == (413, "upload_too_large")
        except aiohttp.ClientError:
            pass  # the server may close while the client still sends: refused either way
        await _nothing_left(c, s)


async def test_no_room_on_disk(tmp_path):
    async with controller(tmp_path, registry_min_free_size=10 ** 18) as c, \
            aiohttp.ClientSession() as s:
        status, body = await upload_raw(s, c.url, DATA, name="m")
        assert (status, body["error"]["code"]) == (507, "insufficient_storage")

        async def chunked():
            yield DATA

        status, body = await upload_raw(s, c.url, chunked(), name="m")
        assert (status, body["error"]["code"]) == (507, "insufficient_storage")
        await _nothing_left(c, s)


@pytest.mark.parametrize("data,fields,code,param", [
    (b"PK\x03\x04 a zip, not a model" * 100, {"name": "z"}, "invalid_model_file", None),
    (b"GGUF", {"name": "short"}, "invalid_model_file", None),
    (DATA, {"name": "m", "format": "safetensors"}, "invalid_model_file", "format"),
    (DATA, {"name": "m", "format": "onnx"}, "invalid_request", "format"),
    (DATA, {"name": "m", "sha256": "0" * 64}, "checksum_mismatch", "sha256"),
    (DATA, {"name": "bad/name"}, "invalid_request", "name"),
    (DATA, {"name": ":leading"}, "invalid_request", "name"),
    (DATA, {}, "invalid_request", "name"),
])
async def test_bad_uploads(tmp_path, data, fields, code, param):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        status, body = await upload_raw(s, c.url, data, **fields)
        assert (status, body["error"]["code"], body["error"]["param"]) == (400, code, param)
        await _nothing_left(c, s)


async def test_the_checksum_given_is_checked(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        status, body = await upload_raw(s, c.url, DATA, name="m",
                                        sha256=hashlib.sha256(DATA).hexdigest().upper())
        assert status == 201, body


async def test_bad_forms(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("name", "m")
        form.add_field("notes", "x")  # a typo of a field is not ignored
        async with s.post(f"{c.url}{API}/upload", data=form, headers=auth()) as r:
            body = await r.json()
            assert (r.status, body["error"]["param"]) == (400, "notes")
        form = aiohttp.FormData(default_to_multipart=True)  # text fields only
        form.add_field("name", "m")
        form.add_field("source", "nowhere")
        async with s.post(f"{c.url}{API}/upload", data=form, headers=auth()) as r:
            body = await r.json()
            assert (r.status, body["error"]["param"]) == (400, "file")
        form = aiohttp.FormData()
        form.add_field("file", DATA, filename="a.gguf")
        form.add_field("file", DATA, filename="b.gguf")
        async with s.post(f"{c.url}{API}/upload", data=form, headers=auth()) as r:
            body = await r.json()
            assert (r.status, body["error"]["param"]) == (400, "file")
        form = aiohttp.FormData()
        form.add_field("file", DATA, filename="a.gguf")
        form.add_field("description", "x" * 70_000)
        async with s.post(f"{c.url}{API}/upload", data=form, headers=auth()) as r:
            body = await r.json()
            assert (r.status, body["error"]["param"]) == (400, "description")
        await _nothing_left(c, s)


async def test_a_taken_name_is_refused(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        assert (await upload_raw(s, c.url, DATA, name="m"))[0] == 201
        status, body = await upload_form(s, c.url, DATA, name="m")
        assert (status, body["error"]["code"]) == (409, "registry_model_exists")
        assert len(await listed(s, c.url)) == 1 and c.leftovers() == []


async def test_two_uploads_of_one_name_at_once(tmp_path):
    """The name is held from the moment it is known: one wins, the other gets 409."""
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        results = await asyncio.gather(upload_raw(s, c.url, DATA, name="same"),
                                       upload_raw(s, c.url, DATA, name="same"))
        assert sorted(status for status, _ in results) == [201, 409]
        assert len(await listed(s, c.url)) == 1 and c.leftovers() == []


async def test_a_stalled_upload_is_cut_off(tmp_path):
    async with controller(tmp_path, registry_idle_timeout="300ms") as c, \
            aiohttp.ClientSession() as s:
        reader, writer = await open_raw(c.url)
        writer.write(f"POST {API}/upload?name=stall HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {ADMIN}\r\nContent-Length: {len(DATA)}\r\n\r\n"
                     .encode() + DATA[:100_000])
        status, _, body = await read_reply(reader)
        writer.close()
        assert status == 408 and b'"code":"body_timeout"' in body
        await until(lambda: c.leftovers() == [])
        assert await listed(s, c.url) == []


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize("kind", ["raw", "multipart"])
async def test_a_client_leaving_mid_upload_leaves_nothing(tmp_path, how, kind):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        if kind == "raw":
            head, body = "application/octet-stream", DATA
        else:
            b = "XyZzy"
            body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; "
                    f"filename=\"m.gguf\"\r\n\r\n").encode() + DATA + f"\r\n--{b}--\r\n".encode()
            head = f"multipart/form-data; boundary={b}"
        reader, writer = await open_raw(c.url)
        writer.write(f"POST {API}/upload?name=gone HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {ADMIN}\r\nContent-Type: {head}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:2_000_000])
        await writer.drain()
        await until(lambda: c.leftovers() != [])  # the part file is being written
        leave(writer, how)
        await until(lambda: c.leftovers() == [])
        writer.close()
        assert await listed(s, c.url) == []


async def test_changes_need_the_admin_key_reads_take_either(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        for key in (CLUSTER, "wrong"):
            status, body = await upload_raw(s, c.url, DATA, key=key, name="m")
            assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        async with s.post(f"{c.url}{API}/upload?name=m", data=DATA) as r:
            assert r.status == 401
        status, model = await upload_raw(s, c.url, DATA, name="m")
        assert status == 201
        for key in (ADMIN, CLUSTER):
            assert len(await listed(s, c.url, key=key)) == 1
            async with s.get(f"{c.url}{API}/m/download", headers=auth(key)) as r:
                assert r.status == 200 and await r.read() == DATA
        for path in (API, f"{API}/m", f"{API}/m/download"):
            async with s.get(f"{c.url}{path}") as r:
                assert (r.status, (await r.json())["error"]["code"]) == (401, "invalid_api_key")
        async with s.delete(f"{c.url}{API}/m", headers=auth(CLUSTER)) as r:
            assert r.status == 401
        async with s.delete(f"{c.url}{API}/m", headers=auth()) as r:
            assert r.status == 200 and await r.json() == {"deleted": model["id"], "name": "m"}
        await _nothing_left(c, s)
        async with s.delete(f"{c.url}{API}/m", headers=auth()) as r:
            body = await r.json()
            assert (r.status, body["error"]["code"]) == (404, "registry_model_not_found")


@pytest.mark.parametrize("key,length,status", [("wrong", 1000, 401),
                                               (ADMIN, 10 ** 15, 413)])
async def test_a_refused_expect_continue_gets_no_100(tmp_path, key, length, status):
    """The checks run before `100 Continue`: the client learns without sending the file."""
    async with controller(tmp_path) as c:
        reader, writer = await open_raw(c.url)
        writer.write(f"POST {API}/upload?name=m HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {key}\r\nExpect: 100-continue\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())
        got, headers, body = await read_reply(reader)  # the final reply, no 100 before it
        writer.close()
        assert got == status and headers["x-request-id"]
        assert b'"code"' in body


async def test_a_taken_or_bad_name_in_the_query_is_refused_before_the_file(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        assert (await upload_raw(s, c.url, DATA, name="m"))[0] == 201
        for name, status in (("m", 409), ("bad/name", 400)):
            reader, writer = await open_raw(c.url)
            writer.write(f"POST {API}/upload?name={name} HTTP/1.1\r\nHost: x\r\n"
                         f"Authorization: Bearer {ADMIN}\r\nExpect: 100-continue\r\n"
                         f"Content-Length: {len(DATA)}\r\n\r\n".encode())
            got, _, body = await read_reply(reader)
            writer.close()
            assert got == status, body
        assert c.leftovers() == []


async def test_a_write_that_fails_mid_upload_leaves_nothing(tmp_path):
    """The disk refuses the file half-way (here RLIMIT_FSIZE, EFBIG: a quota would do
    the same): eldric's error, the part file removed, the registry still working."""
    import resource
    import signal

    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not the signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, old_limit[1]))
        try:
            status, body = await upload_raw(s, c.url, DATA, name="m")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            signal.signal(signal.SIGXFSZ, old_handler)
        assert (status, body["error"]["code"]) == (500, "registry_write_failed")
        await until(lambda: c.leftovers() == [])
        assert await listed(s, c.url) == []
        assert (await upload_raw(s, c.url, DATA, name="m"))[0] == 201


async def test_a_bad_format_or_sha256_in_the_query_is_refused_before_the_file(tmp_path):
    """As a bad name: a typo in ?format= or a malformed ?sha256= is known from the
    request's head; it was refused only after the whole file (gigabytes) was sent."""
    async with controller(tmp_path) as c:
        for query, param in (("name=m&format=onnx", "format"), ("name=m&sha256=xyz", "sha256")):
            reader, writer = await open_raw(c.url)
            writer.write(f"POST {API}/upload?{query} HTTP/1.1\r\nHost: x\r\n"
                         f"Authorization: Bearer {ADMIN}\r\nExpect: 100-continue\r\n"
                         f"Content-Length: {len(DATA)}\r\n\r\n".encode())
            got, _, body = await read_reply(reader)  # the final reply, no 100 before it
            writer.close()
            assert got == 400, body
            assert b'"param":"%s"' % param.encode() in body, body
        assert c.leftovers() == []
