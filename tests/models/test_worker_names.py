"""A model pulled or installed on a file backend under a name that ends like a
quantisation tag (an Ollama-style tag `qwen2.5:0.5b-instruct-q4_K_M`, `mymodel-Q4_K_M`)
is listed, shown, served and deleted by exactly that name. It was listed shortened
(`qwen2.5:0.5b-instruct`, `mymodel`: models_dir strips a file name's quantisation tag),
so the controller never saw the model it had just pulled there."""

from __future__ import annotations

import aiohttp
import pytest

from eldric.modelops.models_dir import installed
from tests.models.test_worker_files import _post, _src, _worker
from tests.models.workers import file_server


@pytest.mark.parametrize("name", ["mymodel-Q4_K_M", "qwen2.5:0.5b-instruct-q4_K_M"])
async def test_a_name_with_a_quantisation_tag_is_kept(aiohttp_server, fake_openai_server,
                                                     tmp_path, name):
    src, data, sha = _src(tmp_path)
    async with file_server(aiohttp_server, src) as files, \
            _worker(fake_openai_server, tmp_path) as (w, models), aiohttp.ClientSession() as s:
        got = await _post(s, w + "/api/v1/models/pull", model=name,
                          url=files.url + "/tiny.gguf", sha256=sha)
        assert got[-1]["state"] == "completed", got
        async with s.get(w + "/api/v1/models/local") as r:
            assert [m["name"] for m in (await r.json())["models"]] == [name]
        async with s.post(w + "/api/v1/models/show", json={"model": name}) as r:
            assert r.status == 200 and (await r.json())["model"] == name
        async with s.get(f"{w}/api/v1/models/files/{name}") as r:
            assert r.status == 200 and await r.read() == data
        got = await _post(s, w + "/api/v1/models/install", name=name,
                          url=files.url + "/tiny.gguf", sha256=sha)
        assert got[-1]["state"] == "completed", got  # the same file: found, not doubled
        assert [m.name for m in installed(models)] == [name]
        async with s.delete(f"{w}/api/v1/models/{name}") as r:
            assert r.status == 200, await r.text()
        assert list(models.iterdir()) == []  # nothing left behind, not even its folder


def test_a_folder_named_as_its_gguf_names_the_model(tmp_path):
    (tmp_path / "m-Q8_0").mkdir()
    (tmp_path / "m-Q8_0" / "m-Q8_0.gguf").write_bytes(b"GGUF")
    (tmp_path / "Qwen2.5").mkdir()
    (tmp_path / "Qwen2.5" / "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf").write_bytes(b"GGUF")
    assert [m.name for m in installed(tmp_path)] == ["Qwen2.5-0.5B-Instruct", "m-Q8_0"]
