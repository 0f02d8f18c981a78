"""The cloud role's kinds table (roles/cloud/kinds.py): every type eldric names is one
entry, and what an entry says is what the role does."""

from __future__ import annotations

from typing import get_args

import aiohttp

from eldric.roles.cloud.config import BackendType
from eldric.roles.cloud.kinds import PROVIDER_KINDS
from eldric.roles.cloud.providers import KNOWN
from tests.conftest import run_cloud, url_of
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import openai_server as fake_openai

MSG = [{"role": "user", "content": "hi"}]


def test_every_known_provider_and_spec_type_is_a_kind():
    assert {p.type for p in KNOWN.values()} <= set(PROVIDER_KINDS)
    assert set(get_args(BackendType)) == set(PROVIDER_KINDS)


async def test_a_path_a_kind_does_not_serve_is_refused_and_the_union_is_advertised(
        aiohttp_server, tmp_path):
    """Anthropic serves chat only: embeddings for its model are a 400 naming what it
    serves, and nothing is sent to it; next to an OpenAI-compatible backend, /health
    advertises what either serves."""
    claude = await aiohttp_server(fake_anthropic.make_app())
    other = await aiohttp_server(fake_openai.make_app())
    backends = (f"anthropic:{url_of(claude)}:{fake_anthropic.API_KEY},"
                f"other:{url_of(other)}/v1")
    async with run_cloud(tmp_path, backends) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["cloud"] + "/v1/embeddings",
                              json={"model": fake_anthropic.MODEL, "input": "hi"}) as r:
                err = (await r.json())["error"]
                assert r.status == 400 and err["code"] == "invalid_request"
                assert "/v1/chat/completions" in err["message"]
            assert claude.app[fake_anthropic.KNOBS].requests == []
            async with s.get(urls["cloud"] + "/health") as r:  # then the translated ones
                assert (await r.json())["paths"][:3] == [
                    "/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
