"""The model API of a worker whose backend serves files from --models-dir (llama.cpp here;
vLLM, TGI and the embedded llama.cpp take the same path): pull by URL, install (a symlink
on a shared filesystem), local, show (the GGUF header), files with Range (another worker
copies from it), delete."""

from __future__ import annotations

import contextlib
import hashlib
import os

import aiohttp
import pytest

from tests.conftest import free_port, run_eldric, url_of
from tests.models.workers import file_server, gguf_bytes, lines


@contextlib.asynccontextmanager
async def _worker(fake_openai_server, tmp_path, name: str = "w"):  # type: ignore[no-untyped-def]
    models = tmp_path / name / "models"
    async with run_eldric("worker", tmp_path / name, port=0, bind="127.0.0.1",
                          backend="llamacpp", backend_url=url_of(fake_openai_server),
                          models_dir=str(models)) as urls:
        yield urls["worker"], models


def _src(tmp_path):  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    data = gguf_bytes(architecture="qwen2", template="{% chat %}")
    (src / "tiny.gguf").write_bytes(data)
    return src, data, hashlib.sha256(data).hexdigest()


async def _post(s: aiohttp.ClientSession, where: str, **body) -> list[dict]:  # type: ignore[no-untyped-def]
    async with s.post(where, json=body) as r:
        assert r.status == 200, await r.text()
        return await lines(r)


async def test_pull_by_url_then_local_show_files_and_delete(aiohttp_server, fake_openai_server,
                                                            tmp_path):
    src, data, sha = _src(tmp_path)
    async with file_server(aiohttp_server, src) as files, \
            _worker(fake_openai_server, tmp_path) as (w, models), aiohttp.ClientSession() as s:
        async with s.get(w + "/health") as r:
            assert (await r.json())["model_ops"] == {"pull": ["url"], "install": True,
                                                      "delete": True, "files": True}
        got = await _post(s, w + "/api/v1/models/pull", model="tiny",
                          url=files.url + "/tiny.gguf", sha256=sha)
        assert got[-1]["state"] == "completed", got
        assert got[-1]["completed_bytes"] == len(data) == got[-1]["total_bytes"]
        assert (models / "tiny.gguf").read_bytes() == data
        async with s.get(w + "/api/v1/models/local") as r:
            local = await r.json()
        assert local["backend"] == "llamacpp"
        [m] = local["models"]
        assert (m["name"], m["format"], m["size"]) == ("tiny", "gguf", len(data))
        async with s.post(w + "/api/v1/models/show", json={"model": "tiny"}) as r:
            shown = await r.json()
        assert shown["format"] == "gguf" and shown["size"] == len(data)
        assert shown["metadata"] == {"general.architecture": "qwen2"}
        assert shown["template"] == "{% chat %}"
        async with s.get(w + "/api/v1/models/files/tiny", headers={"Range": "bytes=0-3"}) as r:
            assert r.status == 206 and await r.read() == b"GGUF"
        async with s.get(w + "/api/v1/models/files/tiny") as r:
            assert r.status == 200 and await r.read() == data
        async with s.delete(w + "/api/v1/models/tiny") as r:
            assert r.status == 200 and await r.json() == {"deleted": "tiny"}
        assert not (models / "tiny.gguf").exists()
        for method, path in (("DELETE", "/api/v1/models/tiny"),
                             ("GET", "/api/v1/models/files/tiny")):
            async with s.request(method, w + path) as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "model_not_found"
        async with s.post(w + "/api/v1/models/show", json={"model": "tiny"}) as r:
            assert r.status == 404


async def test_another_worker_installs_from_this_ones_files(aiohttp_server, fake_openai_server,
                                                            tmp_path):
    src, data, sha = _src(tmp_path)
    async with file_server(aiohttp_server, src) as files, \
            _worker(fake_openai_server, tmp_path, "a") as (a, _), \
            _worker(fake_openai_server, tmp_path, "b") as (b, models_b), \
            aiohttp.ClientSession() as s:
        await _post(s, a + "/api/v1/models/pull", model="tiny", url=files.url + "/tiny.gguf")
        got = await _post(s, b + "/api/v1/models/install", name="tiny",
                          url=a + "/api/v1/models/files/tiny", sha256=sha, size=len(data))
        assert got[-1]["state"] == "completed", got
        assert (models_b / "tiny.gguf").read_bytes() == data


async def test_install_links_a_file_this_host_already_sees(fake_openai_server, tmp_path):
    src, data, sha = _src(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}/tiny.gguf"
    async with _worker(fake_openai_server, tmp_path) as (w, models), aiohttp.ClientSession() as s:
        got = await _post(s, w + "/api/v1/models/install", name="tiny", url=dead,
                          path=str(src / "tiny.gguf"), size=len(data), sha256=sha)
        assert got[-1]["state"] == "completed", got
        assert os.path.islink(models / "tiny.gguf")
        assert os.readlink(models / "tiny.gguf") == str(src / "tiny.gguf")
        async with s.delete(w + "/api/v1/models/tiny") as r:
            assert r.status == 200
        assert (src / "tiny.gguf").exists()  # the link went, not the shared file


async def test_a_checksum_mismatch_leaves_no_file(aiohttp_server, fake_openai_server, tmp_path):
    src, _, _ = _src(tmp_path)
    async with file_server(aiohttp_server, src) as files, \
            _worker(fake_openai_server, tmp_path) as (w, models), aiohttp.ClientSession() as s:
        got = await _post(s, w + "/api/v1/models/pull", model="tiny",
                          url=files.url + "/tiny.gguf", sha256="0" * 64)
        assert got[-1]["state"] == "failed" and got[-1]["code"] == "checksum_mismatch"
        assert not [p for p in models.rglob("*") if p.is_file()]


@pytest.mark.parametrize("body,code", [
    ({"model": "tiny"}, "pull_unsupported"),  # no url: not the Ollama library
    ({"model": "../etc/x", "url": "http://127.0.0.1:9/x.gguf"}, "invalid_request"),
    ({"model": ".hidden", "url": "http://127.0.0.1:9/x.gguf"}, "invalid_request"),
])
async def test_what_a_file_backend_refuses(fake_openai_server, tmp_path, body, code):
    async with _worker(fake_openai_server, tmp_path) as (w, _), aiohttp.ClientSession() as s, \
            s.post(w + "/api/v1/models/pull", json=body) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == code


@contextlib.asynccontextmanager
async def _slow_file(aiohttp_server, data: bytes):  # type: ignore[no-untyped-def]
    """A file sent 64 KiB every 20 ms (Range ignored: a cancel comes long before the end);
    yields its URL and the list of GETs it answered."""
    import asyncio

    from aiohttp import web

    gets: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        gets.append(request.path)
        resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await resp.prepare(request)
        for i in range(0, len(data), 65536):
            await resp.write(data[i:i + 65536])
            await asyncio.sleep(0.02)
        return resp

    app = web.Application()
    app.router.add_get("/big.gguf", handler)
    server = await aiohttp_server(app)
    yield url_of(server) + "/big.gguf", gets


@pytest.mark.parametrize("path,kept", [("pull", True), ("install", False)])
async def test_cancel_keeps_a_part_file_only_for_a_pull(aiohttp_server, fake_openai_server,
                                                        tmp_path, path, kept):
    data = gguf_bytes(filler=4_000_000)
    body = {"model": "big"} if path == "pull" else {"name": "big"}
    async with _slow_file(aiohttp_server, data) as (url, _), \
            _worker(fake_openai_server, tmp_path) as (w, models), aiohttp.ClientSession() as s:
        async with s.post(f"{w}/api/v1/models/{path}", json={**body, "url": url,
                                                               "op_id": "op-x"}) as r:
            async for raw in r.content:
                if b'"completed_bytes":0' not in raw:
                    break  # bytes moved
            async with s.delete(w + "/api/v1/models/ops/op-x") as d:
                assert (await d.json())["state"] == "cancelled"
        assert (models / "big.gguf.part").exists() is kept
        assert not (models / "big.gguf").exists()


async def test_two_pulls_of_one_file_do_not_write_it_at_once(aiohttp_server, fake_openai_server,
                                                             tmp_path):
    import asyncio

    data = gguf_bytes(filler=1_000_000)
    sha = hashlib.sha256(data).hexdigest()
    async with _slow_file(aiohttp_server, data) as (url, gets), \
            _worker(fake_openai_server, tmp_path) as (w, models), aiohttp.ClientSession() as s:
        first, second = await asyncio.gather(*(
            _post(s, w + "/api/v1/models/pull", model="big", url=url, sha256=sha, op_id=i)
            for i in ("op-1", "op-2")))
        assert first[-1]["state"] == second[-1]["state"] == "completed"
        assert len(gets) == 1  # the second waited, then found the file there
        assert (models / "big.gguf").read_bytes() == data
