"""End to end with the real model: SmolLM2's GGUF uploaded to the controller's registry
under a new name, distributed to an embedded worker that did not have it, then chatted
with by that name through router and edge (the openai SDK), and its coverage at the
controller going from nothing to 100 %. Skipped (failed under CI=true) without the
model, as tests/roles/test_worker_embedded.py."""

from __future__ import annotations

import time

import aiohttp
import openai

from eldric.roles.worker.embedded import default_model
from tests.conftest import run_eldric, until
from tests.models.fleet import controller, finished, get, post
from tests.models.registry_helpers import upload_raw
from tests.roles.test_worker_embedded import MODEL as START
from tests.roles.test_worker_embedded import MSGS

NAME = "smol-fleet"


async def _coverage(s, base):  # type: ignore[no-untyped-def]
    _, body = await get(s, base + "/api/v1/models")
    return {m["id"]: m["coverage_percent"] for m in body["models"]}


async def test_upload_distribute_and_chat_by_the_new_name(tmp_path):
    member = {"api_key": "ck", "heartbeat_interval": 100, "port": 0, "bind": "127.0.0.1"}
    async with controller(tmp_path / "c", admin_key="ak", cluster_key="ck") as c, \
            aiohttp.ClientSession() as s:
        base = c["controller"]
        with open(default_model(), "rb") as f:  # type: ignore[arg-type]
            status, entry = await upload_raw(s, base, f, key="ak", name=NAME, format="gguf")
        assert status == 201, entry
        async with run_eldric("worker", tmp_path / "w", backend="embedded", controller=base,
                              models_dir=str(tmp_path / "w" / "models"), **member):
            async def serving():  # type: ignore[no-untyped-def]
                return (await _coverage(s, base)).get(START) == 100.0
            await until(serving, timeout=60)
            assert NAME not in await _coverage(s, base)
            async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                                  controller=base, sync_interval=100,
                                  health_interval=200) as r, \
                    run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                               bind="127.0.0.1", routers=r["router"], api_key="sk-e2e") as e:
                client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key="sk-e2e",
                                            max_retries=0)
                started = time.monotonic()
                status, accepted = await post(s, base + "/api/v1/models/distribute",
                                              {"model": NAME, "source": "registry"}, key="ak")
                assert status == 202, accepted
                job = await finished(s, base, accepted["job_id"], timeout=60)
                assert job["state"] == "completed", job
                landed = time.monotonic() - started

                async def chat():  # type: ignore[no-untyped-def]
                    try:
                        return await client.chat.completions.create(
                            model=NAME, messages=MSGS, max_tokens=8, temperature=0)
                    except openai.APIStatusError:
                        return None
                reply = await until(chat, timeout=60, every=0.2)
                routable = time.monotonic() - started
                assert reply.model == NAME and reply.choices[0].message.content
                assert (await _coverage(s, base))[NAME] == 100.0
    print(f"distribute: installed in {landed:.2f}s, routable through the edge in "
          f"{routable:.2f}s")
