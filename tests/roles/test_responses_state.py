"""The state of /v1/responses: kept by the first eldric hop only, per API key, TTL-bound,
in SQLite or (the edge's farm mode) Redis; unknown ids are 404s in OpenAI's shape with
eldric's code, wherever no hop behind can know them."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest

from tests.conftest import run_eldric
from tests.roles.test_responses_hops import (  # noqa: F401 - hops is a fixture
    MODEL, TEXT, cluster, hops, prompt_tokens, sdk,
)


def not_found(info: pytest.ExceptionInfo) -> None:
    assert info.value.status_code == 404 and info.value.code == "response_not_found"
    assert info.value.body["type"] == "not_found_error"


async def test_one_key_cannot_reach_another_keys_response(hops):
    a, b = sdk(hops["edge"], "sk-a"), sdk(hops["edge"], "sk-b")
    r = await a.responses.create(model=MODEL, input="hi")
    with pytest.raises(openai.NotFoundError) as info:
        await b.responses.retrieve(r.id)
    not_found(info)
    with pytest.raises(openai.NotFoundError) as info:
        await b.responses.delete(r.id)
    not_found(info)
    with pytest.raises(openai.NotFoundError) as info:
        await b.responses.create(model=MODEL, input="x", previous_response_id=r.id)
    not_found(info)
    assert info.value.param == "previous_response_id"
    assert (await a.responses.retrieve(r.id)).output_text == TEXT  # still there for a
    assert await a.responses.delete(r.id) is None
    with pytest.raises(openai.NotFoundError) as info:
        await a.responses.retrieve(r.id)
    not_found(info)
    async with aiohttp.ClientSession() as s:  # no key at all: the edge's 401 first
        async with s.get(hops["edge"] + f"/v1/responses/{r.id}") as resp:
            assert resp.status == 401


async def test_delete_answers_the_documented_body(hops):
    c = sdk(hops["edge"])
    r = await c.responses.create(model=MODEL, input="hi")
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-a"}) as s:
        async with s.delete(hops["edge"] + f"/v1/responses/{r.id}") as resp:
            assert resp.status == 200
            assert await resp.json() == {"id": r.id, "object": "response", "deleted": True}
            assert resp.headers["X-RateLimit-Limit"]  # the edge's headers, as on any reply


async def test_store_false_keeps_nothing(hops):
    c = sdk(hops["edge"])
    r = await c.responses.create(model=MODEL, input="hi", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        await c.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        await c.responses.create(model=MODEL, input="x", previous_response_id=r.id)


@pytest.mark.parametrize("hop", ["worker", "router", "edge"])
async def test_an_unknown_previous_id_is_a_404(hops, hop):
    with pytest.raises(openai.NotFoundError) as info:
        await sdk(hops[hop]).responses.create(model=MODEL, input="x",
                                              previous_response_id="resp_nope")
    not_found(info)
    assert info.value.param == "previous_response_id"
    with pytest.raises(openai.NotFoundError) as info:
        await sdk(hops[hop]).responses.retrieve("resp_nope")
    not_found(info)


async def test_only_the_first_hop_keeps_it(hops):
    """Through the edge: the router and the worker are sent a request with no state in it
    (input expanded, store false), so neither keeps a copy nor is asked for an id."""
    r1 = await sdk(hops["edge"]).responses.create(model=MODEL, input="hi")
    r2 = await sdk(hops["edge"]).responses.create(model=MODEL, input="more",
                                                  previous_response_id=r1.id)
    for hop in ("router", "worker"):  # the same key: it is not the key that hides it
        with pytest.raises(openai.NotFoundError):
            await sdk(hops[hop]).responses.retrieve(r2.id)
    # and a chain started at the router is the router's
    c = sdk(hops["router"])
    r = await c.responses.create(model=MODEL, input="hi")
    assert (await c.responses.retrieve(r.id)).id == r.id
    with pytest.raises(openai.NotFoundError):
        await sdk(hops["worker"]).responses.retrieve(r.id)


async def test_input_items(hops):
    c = sdk(hops["edge"])
    r = await c.responses.create(model=MODEL, input=[
        {"role": "user", "content": "one"}, {"role": "user", "content": "two"}])
    page = await c.responses.input_items.list(r.id, order="asc")
    assert [i.content[0].text if not isinstance(i.content, str) else i.content
            for i in page.data] == ["one", "two"]
    assert all(i.id for i in page.data)
    desc = await c.responses.input_items.list(r.id, limit=1)
    assert len(desc.data) == 1 and desc.has_more and desc.data[0].id == page.data[1].id
    with pytest.raises(openai.BadRequestError) as info:
        await c.responses.input_items.list(r.id, limit=0)
    assert info.value.param == "limit"


async def test_ttl_from_the_config(tmp_path):
    async with run_eldric("worker", tmp_path, backend="mock", port=0, bind="127.0.0.1",
                          responses_ttl="1s") as w:
        c = sdk(w["worker"])
        r = await c.responses.create(model=MODEL, input="hi")
        assert (await c.responses.retrieve(r.id)).id == r.id
        await asyncio.sleep(1.2)
        with pytest.raises(openai.NotFoundError):
            await c.responses.retrieve(r.id)


async def test_with_the_edge_store_off_the_router_keeps_it(tmp_path):
    """Only on an open edge: with keys required the edge refuses to start so
    (test_responses_owners), as every key would be one owner behind it."""
    async with cluster(tmp_path, responses_store=False, require_api_key=False) as urls:
        c = sdk(urls["edge"])
        r1 = await c.responses.create(model=MODEL, input="hi")
        r2 = await c.responses.create(model=MODEL, input="more", previous_response_id=r1.id)
        assert r2.usage.input_tokens == prompt_tokens("hi", TEXT, "more")
        assert (await c.responses.retrieve(r2.id)).id == r2.id  # relayed to the router
        # the router sees no client key (the edge keeps those): it is the keyless owner's
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["router"] + f"/v1/responses/{r2.id}") as resp:
                assert resp.status == 200 and (await resp.json())["id"] == r2.id
        with pytest.raises(openai.NotFoundError):
            await sdk(urls["router"], "another-key").responses.retrieve(r2.id)


async def test_farm_mode_edges_share_responses_in_redis(tmp_path, redis_url):
    async with run_eldric("worker", tmp_path / "w", backend="mock", port=0,
                          bind="127.0.0.1") as w, \
            run_eldric("edge", tmp_path / "e1", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=w["worker"], api_key=["sk-a", "sk-b"], mode="farm",
                       redis_url=redis_url) as e1, \
            run_eldric("edge", tmp_path / "e2", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=w["worker"], api_key=["sk-a", "sk-b"], mode="farm",
                       redis_url=redis_url) as e2:
        r1 = await sdk(e1["edge"]).responses.create(model=MODEL, input="hi")
        async with sdk(e2["edge"]).responses.stream(
                model=MODEL, input="more", previous_response_id=r1.id) as stream:
            r2 = await stream.get_final_response()
        assert r2.usage.input_tokens == prompt_tokens("hi", TEXT, "more")
        assert (await sdk(e1["edge"]).responses.retrieve(r2.id)).output_text == TEXT
        with pytest.raises(openai.NotFoundError):
            await sdk(e2["edge"], "sk-b").responses.retrieve(r2.id)
        await sdk(e2["edge"]).responses.delete(r1.id)
        with pytest.raises(openai.NotFoundError):
            await sdk(e1["edge"]).responses.retrieve(r1.id)
