"""The fake Ollama's model management follows Ollama's documented transcripts (the fleet
tests rely on it): pull's order and in-band error, blobs, create, delete, tags."""

from __future__ import annotations

import hashlib
import json

import aiohttp

from tests.conftest import url_of
from tests.fakes import ollama as fake_ollama
from tests.fakes.ollama_models import MANIFEST_MISSING, Models


async def _lines(resp: aiohttp.ClientResponse) -> list[dict]:
    return [json.loads(line) async for line in resp.content if line.strip()]


async def test_pull_streams_the_documented_order_and_lists_the_model(aiohttp_server):
    server = await aiohttp_server(fake_ollama.make_app())
    async with aiohttp.ClientSession() as s:
        async with s.post(url_of(server) + "/api/pull", json={"model": "llama3.2:1b"}) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/x-ndjson"
            lines = await _lines(r)
        async with s.get(url_of(server) + "/api/tags") as r:
            names = [m["name"] for m in (await r.json())["models"]]
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layers = [line for line in lines if line["status"].startswith("pulling sha")
              or "digest" in line]
    assert layers and all(line["digest"].startswith("sha256:") for line in layers)
    assert layers[0]["status"] == f"pulling {layers[0]['digest'][7:19]}"
    assert "completed" not in layers[0]  # omitempty while nothing came yet
    assert layers[-1]["completed"] == layers[-1]["total"]
    assert "llama3.2:1b" in names


async def test_pull_of_a_missing_model_fails_in_band_after_200(aiohttp_server):
    server = await aiohttp_server(fake_ollama.make_app())
    async with aiohttp.ClientSession() as s, \
            s.post(url_of(server) + "/api/pull", json={"model": "nope"}) as r:
        assert r.status == 200
        assert await _lines(r) == [{"status": "pulling manifest"}, {"error": MANIFEST_MISSING}]


async def test_fail_after_bytes_and_resume(aiohttp_server):
    models = Models(fail={"llama3.2:1b": 1_000_000})
    server = await aiohttp_server(fake_ollama.make_app(manage=models))
    async with aiohttp.ClientSession() as s:
        async with s.post(url_of(server) + "/api/pull", json={"model": "llama3.2:1b"}) as r:
            lines = await _lines(r)
        assert "error" in lines[-1]
        del models.fail["llama3.2:1b"]
        async with s.post(url_of(server) + "/api/pull", json={"model": "llama3.2:1b"}) as r:
            lines = await _lines(r)
    first = next(line for line in lines if "digest" in line)
    assert first["completed"] == 1_000_000  # resumed where it broke off
    assert lines[-1] == {"status": "success"}


async def test_blobs_and_create_from_gguf(aiohttp_server):
    server = await aiohttp_server(fake_ollama.make_app())
    base = url_of(server)
    data = b"GGUF" + b"\0" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    async with aiohttp.ClientSession() as s:
        async with s.head(f"{base}/api/blobs/{digest}") as r:
            assert r.status == 404
        async with s.post(f"{base}/api/blobs/sha256:{'0' * 64}", data=data) as r:
            assert r.status == 400 and "mismatch" in (await r.json())["error"]
        async with s.post(f"{base}/api/blobs/{digest}", data=data) as r:
            assert r.status == 201
        async with s.head(f"{base}/api/blobs/{digest}") as r:
            assert r.status == 200
        async with s.post(f"{base}/api/create",
                          json={"model": "mine", "files": {"m.gguf": digest}}) as r:
            assert [line["status"] for line in await _lines(r)] == [
                "parsing GGUF", f"using existing layer {digest}", "writing manifest", "success"]
        async with s.post(f"{base}/api/create",
                          json={"model": "x", "files": {"m.gguf": "sha256:" + "1" * 64}}) as r:
            assert r.status == 200 and "error" in (await _lines(r))[-1]
        async with s.post(f"{base}/api/create", json={"model": "x"}) as r:
            assert r.status == 400
        async with s.get(f"{base}/api/tags") as r:
            assert "mine:latest" in [m["name"] for m in (await r.json())["models"]]
        async with s.delete(f"{base}/api/delete", json={"model": "mine"}) as r:
            assert r.status == 200 and await r.read() == b""
        async with s.delete(f"{base}/api/delete", json={"model": "mine"}) as r:
            assert r.status == 404 and (await r.json())["error"] == "model 'mine' not found"
