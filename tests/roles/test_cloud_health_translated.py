"""The cloud worker's /health names the client API paths it serves by translation
(WorkerHealth.translated), as a worker's does: every one on an OpenAI-compatible
provider; next to an Anthropic backend, /v1/messages too (the OpenAI one translates it)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import run_cloud, url_of
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import openai_server as fake_openai

EVERY = ["/v1/messages", "/v1/responses", "/api/chat", "/api/generate", "/api/embed",
         "/api/embeddings"]


async def health(tmp_path, backends: str) -> dict:
    async with run_cloud(tmp_path, backends) as urls, aiohttp.ClientSession() as s:
        async with s.get(urls["cloud"] + "/health") as r:
            return await r.json()


async def test_an_openai_compatible_provider_translates_every_client_api(aiohttp_server,
                                                                         tmp_path):
    other = await aiohttp_server(fake_openai.make_app())
    got = await health(tmp_path, f"other:{url_of(other)}/v1")
    assert got["translated"] == EVERY
    assert set(EVERY) <= set(got["paths"])


@pytest.mark.parametrize("with_openai", [False, True])
async def test_an_anthropic_backend_serves_messages_natively(aiohttp_server, tmp_path,
                                                             with_openai):
    claude = await aiohttp_server(fake_anthropic.make_app())
    backends = f"anthropic:{url_of(claude)}:{fake_anthropic.API_KEY}"
    if with_openai:
        other = await aiohttp_server(fake_openai.make_app())
        backends += f",other:{url_of(other)}/v1"
    got = await health(tmp_path, backends)
    # chat-only: no embeddings to translate Ollama's embed APIs to
    alone = ["/v1/responses", "/api/chat", "/api/generate"]
    assert got["translated"] == (EVERY if with_openai else alone)
    assert "/v1/messages" in got["paths"]
