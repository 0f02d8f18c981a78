"""POST /api/v1/models/install on an Ollama worker: the GGUF downloaded (or read where it
is, on a shared filesystem), pushed as a blob, the model created from it; each failure
ends the op with eldric's code."""

from __future__ import annotations

import hashlib

import aiohttp

from tests.conftest import free_port
from tests.models.workers import file_server, gguf_bytes, lines, ollama_worker


async def _install(s: aiohttp.ClientSession, worker: str, **body) -> list[dict]:  # type: ignore[no-untyped-def]
    async with s.post(worker + "/api/v1/models/install", json=body) as r:
        assert r.status == 200, await r.text()
        return await lines(r)


def _file(tmp_path, data: bytes = b""):  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    data = data or gguf_bytes()
    (src / "mine.gguf").write_bytes(data)
    return src, data, hashlib.sha256(data).hexdigest()


async def test_install_downloads_pushes_the_blob_and_creates_the_model(aiohttp_server, tmp_path):
    src, data, sha = _file(tmp_path)
    async with file_server(aiohttp_server, src) as files, \
            ollama_worker(aiohttp_server, tmp_path / "w") as w, aiohttp.ClientSession() as s:
        got = await _install(s, w.url, name="mine", url=files.url + "/mine.gguf", sha256=sha,
                             size=len(data), op_id="op-i")
        assert got[-1]["state"] == "completed", got
        assert got[-1]["total_bytes"] == len(data)
        assert "pulling" in [g["state"] for g in got]
        assert ("blob", "sha256:" + sha) in w.models.seen
        assert ("create", "mine:latest") in w.models.seen
        async with s.get(w.url + "/api/v1/models/local") as r:
            assert "mine:latest" in [m["name"] for m in (await r.json())["models"]]
        async with s.get(w.url + "/health") as r:
            assert "mine:latest" in (await r.json())["models"]
    assert not list((tmp_path / "w").rglob("mine.gguf*"))  # the download went to Ollama


async def test_a_file_this_host_sees_is_not_downloaded(aiohttp_server, tmp_path):
    src, data, sha = _file(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}/mine.gguf"  # a download would fail
    async with ollama_worker(aiohttp_server, tmp_path / "w") as w, aiohttp.ClientSession() as s:
        got = await _install(s, w.url, name="mine", url=dead, path=str(src / "mine.gguf"),
                             size=len(data), sha256=sha)
        assert got[-1]["state"] == "completed", got
        assert ("blob", "sha256:" + sha) in w.models.seen
    assert (src / "mine.gguf").exists()  # the shared file stays


async def test_a_checksum_mismatch_fails_the_install(aiohttp_server, tmp_path):
    src, data, sha = _file(tmp_path)
    async with file_server(aiohttp_server, src) as files, \
            ollama_worker(aiohttp_server, tmp_path / "w") as w, aiohttp.ClientSession() as s:
        got = await _install(s, w.url, name="mine", url=files.url + "/mine.gguf",
                             sha256="0" * 64)
        assert got[-1]["state"] == "failed" and got[-1]["code"] == "checksum_mismatch"
        assert ("create", "mine:latest") not in w.models.seen


async def test_a_missing_file_fails_the_install(aiohttp_server, tmp_path):
    src, _, _ = _file(tmp_path)
    async with file_server(aiohttp_server, src) as files, \
            ollama_worker(aiohttp_server, tmp_path / "w") as w, aiohttp.ClientSession() as s:
        got = await _install(s, w.url, name="mine", url=files.url + "/nope.gguf")
        assert got[-1]["state"] == "failed" and got[-1]["code"] == "download_failed"


async def test_a_file_ollama_refuses_fails_in_band(aiohttp_server, tmp_path):
    src, data, sha = _file(tmp_path, b"not a gguf at all")
    async with file_server(aiohttp_server, src) as files, \
            ollama_worker(aiohttp_server, tmp_path / "w") as w, aiohttp.ClientSession() as s:
        got = await _install(s, w.url, name="mine", url=files.url + "/mine.gguf", sha256=sha)
        assert got[-1]["state"] == "failed" and got[-1]["code"] == "backend_error"


async def test_safetensors_is_refused_before_any_stream(aiohttp_server, tmp_path):
    async with ollama_worker(aiohttp_server, tmp_path) as w, aiohttp.ClientSession() as s, \
            s.post(w.url + "/api/v1/models/install",
                   json={"name": "m", "url": "http://127.0.0.1:9/m.safetensors",
                         "format": "safetensors"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "install_unsupported"
