"""Distribute from the controller's own model registry to real workers: an Ollama worker
downloads the file with the cluster key and creates the model; a llama.cpp worker on the
same host sees the registry's file at its path (a shared filesystem) and links it."""

from __future__ import annotations

import hashlib
import os

import aiohttp

from tests.conftest import run_eldric, until, url_of
from tests.fakes import ollama as fake_ollama
from tests.fakes.ollama_models import MODELS, Models
from tests.models.fleet import by_worker, controller, finished, get, post
from tests.models.gguf_file import small_model
from tests.models.registry_helpers import upload_raw


async def test_a_registry_model_lands_on_an_ollama_and_a_file_worker(aiohttp_server,
                                                                     fake_openai_server,
                                                                     tmp_path):
    ollama = await aiohttp_server(fake_ollama.make_app(manage=Models()))
    data = small_model(data=300_000)
    models_dir = tmp_path / "l" / "models"
    async with controller(tmp_path, admin_key="ak", cluster_key="ck") as c, \
            aiohttp.ClientSession() as s:
        base = c["controller"]
        status, entry = await upload_raw(s, base, data, key="ak", name="tiny-reg",
                                         format="gguf")
        assert status in (200, 201), entry
        member = {"controller": base, "api_key": "ck", "heartbeat_interval": 100,
                  "port": 0, "bind": "127.0.0.1"}
        async with run_eldric("worker", tmp_path / "o", backend="ollama",
                              backend_url=url_of(ollama), **member), \
                run_eldric("worker", tmp_path / "l", backend="llamacpp",
                           backend_url=url_of(fake_openai_server), models_dir=str(models_dir),
                           **member):
            async def two():  # type: ignore[no-untyped-def]
                _, listing = await get(s, base + "/api/v1/workers")
                return listing["workers"] if len(listing["workers"]) == 2 else None
            workers = {w["backend"]["type"]: w["id"] for w in await until(two, timeout=20)}
            status, accepted = await post(s, base + "/api/v1/models/distribute",
                                          {"model": "tiny-reg", "source": "registry"}, key="ak")
            assert status == 202, accepted
            j = await finished(s, base, accepted["job_id"], timeout=20)
            missing, err = await post(s, base + "/api/v1/models/distribute",
                                      {"model": "nope", "source": "registry"}, key="ak")
    assert j["state"] == "completed", j
    assert j["source"] == "registry" and j["model"] == "tiny-reg"
    t = by_worker(j)
    assert t[workers["ollama"]]["state"] == t[workers["llamacpp"]]["state"] == "completed"
    # Ollama got the file as a blob of its sha256, then the model made from it.
    sha = hashlib.sha256(data).hexdigest()
    seen = ollama.app[MODELS].seen
    assert ("blob", f"sha256:{sha}") in seen and any(k == "create" for k, _ in seen)
    # The llama.cpp worker links the registry's own file: the same file, not a copy.
    (installed,) = [p for p in models_dir.iterdir() if p.name.startswith("tiny-reg")]
    assert os.path.islink(installed)
    assert os.path.realpath(installed) == os.path.realpath(entry["path"])
    assert missing == 404 and err["error"]["code"] == "registry_model_not_found"
