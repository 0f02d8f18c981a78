"""Uploads to the model registry that succeed: raw and multipart, fields from the form or
the query, the GGUF header read into the metadata, the file on disk as sent; the role's
--max-body-size and --body-timeout do not apply to this route (and still do elsewhere)."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp

from tests.conftest import open_raw, read_reply
from tests.models.gguf_file import small_model
from tests.models.registry_helpers import (ADMIN, API, CLUSTER, auth, controller, listed,
                                           upload_form, upload_raw)

DATA = small_model(file_type=15, data=3_000_000)  # a few MB: behaviour, not throughput
SHA = hashlib.sha256(DATA).hexdigest()


async def test_raw_upload_is_stored_with_its_header_metadata(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        status, model = await upload_raw(s, c.url, DATA, name="tiny-q4", source="hf:x/y",
                                         description="a test model", sha256=SHA)
        assert status == 201, model
        assert {k: model[k] for k in ("name", "format", "size", "sha256", "source",
                                      "description", "architecture", "parameter_count",
                                      "quantization", "file_type")} == {
            "name": "tiny-q4", "format": "gguf", "size": len(DATA), "sha256": SHA,
            "source": "hf:x/y", "description": "a test model", "architecture": "llama",
            "parameter_count": 64, "quantization": "Q4_K_M", "file_type": 15}
        assert model["created_at"] > 0 and model["filename"] == "tiny-q4.gguf"
        with open(model["path"], "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == SHA
        assert [m["id"] for m in await listed(s, c.url)] == [model["id"]]
        for ref in (model["id"], "tiny-q4"):  # by id or by name
            async with s.get(f"{c.url}{API}/{ref}", headers=auth(CLUSTER)) as r:
                assert r.status == 200 and await r.json() == model
        assert c.leftovers() == []


async def test_multipart_upload_takes_fields_before_or_after_the_file(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        status, first = await upload_form(s, c.url, DATA, name="from-form", source="url")
        assert status == 201 and (first["name"], first["source"]) == ("from-form", "url")
        # fields after the file part, and the name from the file's name
        form = aiohttp.FormData()
        form.add_field("file", DATA, filename="Some-Model-7B.Q4_K_M.gguf")
        form.add_field("description", "after the file")
        async with s.post(f"{c.url}{API}/upload", data=form, headers=auth()) as r:
            second = await r.json()
            assert r.status == 201, second
        assert (second["name"], second["description"]) == ("Some-Model-7B.Q4_K_M",
                                                           "after the file")
        assert second["sha256"] == first["sha256"] == SHA
        assert {m["name"] for m in await listed(s, c.url)} == {"from-form",
                                                               "Some-Model-7B.Q4_K_M"}
        assert c.leftovers() == []


async def test_safetensors_upload(tmp_path):
    header = b'{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}'
    data = len(header).to_bytes(8, "little") + header + b"\x00\x01\x02\x03"
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        status, model = await upload_raw(s, c.url, data, name="st")
        assert status == 201, model
        assert (model["format"], model["filename"], model["architecture"]) == \
            ("safetensors", "st.safetensors", None)


async def test_upload_is_not_held_to_the_roles_body_size_and_timeout(tmp_path):
    """A 1 MiB --max-body-size and a 300 ms --body-timeout: a 3 MB upload trickled over
    ~1 s is taken (the registry's own idle timeout is 2 s), while an ordinary route of
    the same role still refuses a body over the limit."""
    async with controller(tmp_path, max_body_size=1 << 20, body_timeout="300ms",
                          registry_idle_timeout="2s") as c, aiohttp.ClientSession() as s:
        async def trickle():
            for i in range(0, len(DATA), len(DATA) // 8 + 1):
                yield DATA[i:i + len(DATA) // 8 + 1]
                await asyncio.sleep(0.12)

        status, model = await upload_raw(s, c.url, trickle(), name="slow")
        assert status == 201, model
        assert (model["size"], model["sha256"]) == (len(DATA), SHA)
        async with s.post(f"{c.url}/api/v1/workers/register", data=b"x" * (2 << 20),
                          headers={**auth(CLUSTER), "Content-Type": "application/json"}) as r:
            assert r.status == 413  # the limit is still there, for everything else


async def test_expect_continue_and_chunked_raw_upload(tmp_path):
    """curl -T sends `Expect: 100-continue` and, from a pipe, a chunked body."""
    async with controller(tmp_path) as c:
        reader, writer = await open_raw(c.url)
        writer.write(f"POST {API}/upload?name=chunked HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {ADMIN}\r\nExpect: 100-continue\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
        for i in range(0, len(DATA), 1 << 20):
            part = DATA[i:i + (1 << 20)]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        writer.write(b"0\r\n\r\n")
        status, _, body = await read_reply(reader)
        writer.close()
        assert status == 201, body
        assert b'"sha256":"%s"' % SHA.encode() in body


async def test_registry_survives_a_restart_and_drops_what_an_interrupted_upload_left(tmp_path):
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        status, model = await upload_raw(s, c.url, DATA, name="kept")
        assert status == 201
    # what a process killed mid-upload or mid-commit leaves
    (c.dir / ".incoming" / "dead.part").write_bytes(b"GGUF partial")
    (c.dir / "0123456789ab").mkdir()
    (c.dir / "0123456789ab" / "x.gguf").write_bytes(b"GGUF no meta")
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        assert await listed(s, c.url) == [model]
        assert c.leftovers() == []
