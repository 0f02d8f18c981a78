"""A pull or install into a model folder of its own (a safetensors model, a name ending
like a quantisation tag) that fails and keeps nothing to resume leaves no empty folder
behind in --models-dir (it did: one per failed attempt, each a name nothing lists)."""

from __future__ import annotations

import aiohttp

from tests.conftest import free_port
from tests.models.test_worker_files import _post, _src, _worker
from tests.models.workers import file_server


async def test_failed_installs_leave_no_empty_folders(aiohttp_server, fake_openai_server,
                                                     tmp_path):
    src, _, _ = _src(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"
    async with file_server(aiohttp_server, src) as files, \
            _worker(fake_openai_server, tmp_path) as (w, models), aiohttp.ClientSession() as s:
        got = await _post(s, w + "/api/v1/models/install", name="st", format="safetensors",
                          url=dead + "/model.safetensors")
        assert got[-1]["state"] == "failed", got
        got = await _post(s, w + "/api/v1/models/pull", model="m-Q8_0",
                          url=files.url + "/tiny.gguf", sha256="0" * 64)
        assert got[-1]["code"] == "checksum_mismatch", got
        assert not models.exists() or list(models.iterdir()) == []
