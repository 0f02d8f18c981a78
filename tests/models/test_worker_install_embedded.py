"""The real model end to end on one worker: the SmolLM2 GGUF installed into an embedded
worker under a new name through its model API (a symlink: the file is on this host), then
served by that name at once. One test on purpose: it loads the model (two shared cores).
Skipped, or failed under CI=true, without the model (tests/roles/test_worker_embedded.py)."""

from __future__ import annotations

import hashlib
import os

import aiohttp

from eldric.roles.worker.embedded import default_model
from tests.conftest import free_port, run_eldric
from tests.models.test_embedded_real import _chat, _healthy
from tests.models.workers import lines
from tests.roles.test_worker_embedded import MODEL as START


async def test_an_installed_model_is_listed_and_served_by_its_new_name(tmp_path):
    src = default_model()
    assert src is not None
    data = open(src, "rb").read()
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="embedded",
                          models_dir=str(tmp_path / "models")) as w, \
            aiohttp.ClientSession() as s:
        url = w["worker"]
        await _healthy(s, url)
        async with s.post(url + "/api/v1/models/install", json={
                "name": "smol-installed", "url": f"http://127.0.0.1:{free_port()}/x.gguf",
                "path": src, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}) as r:
            got = await lines(r)
        assert got[-1]["state"] == "completed", got
        assert os.path.islink(tmp_path / "models" / "smol-installed.gguf")
        async with s.get(url + "/health") as r:  # servable at once, no restart
            assert "smol-installed" in (await r.json())["models"]
        async with s.get(url + "/api/v1/models/local") as r:
            local = {m["name"]: m for m in (await r.json())["models"]}
        assert local[START]["loaded"] is True and local["smol-installed"]["loaded"] is False
        status, _, reply = await _chat(s, url, "smol-installed")
        assert status == 200 and reply["model"] == "smol-installed"
