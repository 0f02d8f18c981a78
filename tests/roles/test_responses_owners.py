"""Whose /v1/responses state the edge keeps: per API key, on an edge that requires keys
and on an open one alike; and the one configuration that could not keep keys apart (the
edge's store off while keys are required) refused at start-up."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from eldric.errors import ConfigError
from tests.conftest import run_eldric
from tests.roles.test_responses_hops import MODEL, TEXT, cluster, sdk


async def test_the_edge_store_off_with_keys_required_is_refused_at_start(tmp_path):
    with pytest.raises(ConfigError, match="no-responses-store"):
        async with run_eldric("edge", tmp_path, no_tls=True, http_port=0, bind="127.0.0.1",
                              routers="http://127.0.0.1:9", api_key=["sk-a"],
                              responses_store=False):
            pass


async def test_an_open_edge_keeps_callers_apart_by_the_key_they_present(tmp_path):
    async with cluster(tmp_path, require_api_key=False) as urls:
        edge = urls["edge"]
        # tokens the edge does not know (it is open), and one it does: each its own owner
        for mine, other in (("tok-x", "tok-y"), ("tok-x", "sk-a"), ("sk-a", "tok-x")):
            r = await sdk(edge, mine).responses.create(model=MODEL, input="hi")
            with pytest.raises(openai.NotFoundError):
                await sdk(edge, other).responses.retrieve(r.id)
            with pytest.raises(openai.NotFoundError):
                await sdk(edge, other).responses.create(model=MODEL, input="x",
                                                        previous_response_id=r.id)
            with pytest.raises(openai.NotFoundError):
                await sdk(edge, other).responses.delete(r.id)
            async with aiohttp.ClientSession() as s:  # nor the caller with no token
                async with s.get(edge + f"/v1/responses/{r.id}") as resp:
                    assert resp.status == 404
            got = await sdk(edge, mine).responses.retrieve(r.id)
            assert got.output_text == TEXT
        # and a caller with no token has its own: the keyless owner's
        async with aiohttp.ClientSession() as s:
            async with s.post(edge + "/v1/responses",
                              json={"model": MODEL, "input": "hi"}) as resp:
                rid = (await resp.json())["id"]
            async with s.get(edge + f"/v1/responses/{rid}") as resp:
                assert resp.status == 200
        with pytest.raises(openai.NotFoundError):
            await sdk(edge, "tok-x").responses.retrieve(rid)
