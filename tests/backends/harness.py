"""What the native backends' end-to-end tests share: a cloud role built from a config
file's backends (a native kind is given by its `type` and `options`), the openai SDK on
it, and waiting until a model is listed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import aiohttp
import openai

from eldric import config, registry
from tests.conftest import run_role, serving


@contextlib.asynccontextmanager
async def cloud(tmp_path, specs: list[dict]) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """A cloud role on a free loopback port with these backend specs: its URL."""
    cfg = tmp_path / "cloud.json"
    cfg.write_text(json.dumps({"cloud": {"port": 0, "bind_address": "127.0.0.1",
                                         "backends": specs}}))
    role = registry.load("cloud")
    loaded = config.load({"cloud": (role.config, role.defaults())}, str(cfg), {},
                         {"process.data_dir": (None, str(tmp_path / "d"))})
    async with serving([role], loaded) as found:
        yield found["cloud"]


def client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


async def listed(url: str, model: str) -> None:
    """Until /v1/models lists the model (the backends' first probe is done)."""
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            async with s.get(url + "/v1/models") as r:
                if r.status == 200 and model in {m["id"] for m in (await r.json())["data"]}:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{model} was never listed")


@contextlib.asynccontextmanager
async def worker(tmp_path, backend: str, url: str, key: str,  # type: ignore[no-untyped-def]
                 **settings) -> AsyncIterator[str]:
    """A worker fronting one backend of this native kind (--backend NAME --backend-url
    URL --backend-api-key KEY, --backend-options as `backend_options`): its URL."""
    from eldric.roles import worker as worker_role

    async with run_role(worker_role.ROLE, tmp_path, backend=backend, backend_url=url,
                        backend_api_key=key, **settings) as u:
        yield u
