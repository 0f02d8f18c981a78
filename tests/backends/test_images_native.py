"""Images on the way to a native adapter (eldric.backends.call.send), through the cloud
role with the official openai SDK: http(s) image URLs fetched into bytes for an API that
takes bytes only (the `pics` test adapter, as Bedrock's and Gemini's inline images), the
backend's ``options.vision`` refusing them (400 vision_unsupported, nothing sent), and a
URL that cannot be fetched a 400 naming it, not tried on the next backend. An
OpenAI-compatible backend's ``options.vision`` is checked by the cloud role itself."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Literal, get_args

import aiohttp
import openai
import pytest

from eldric.roles import cloud as cloud_role
from eldric.roles import worker as worker_role
from eldric.roles.cloud import kinds as cloud_kinds
from eldric.roles.cloud.providers import KNOWN, Provider
from eldric.roles.worker.backends import KINDS, BackendKind
from eldric.roles.worker.config import BackendType, WorkerConfig
from tests.backends import pics
from tests.backends.imagery import B64, image_host, see
from tests.conftest import run_role, until, url_of
from tests.fakes import openai_server as fake_openai



class PicsConfig(WorkerConfig, kw_only=True, forbid_unknown_fields=True):
    backend: Literal[(*get_args(BackendType), "pics")] = "pics"  # type: ignore[valid-type]


PICS_WORKER = dataclasses.replace(worker_role.ROLE, config=PicsConfig)


@pytest.fixture
def pics_kind(monkeypatch):  # type: ignore[no-untyped-def]
    """`pics` as a cloud kind, as a native module's ADAPTERS and ROWS would make it."""
    monkeypatch.setitem(cloud_kinds.PROVIDER_KINDS, "pics", cloud_kinds._native(pics.PICS))
    for name in ("pics-a", "pics-b"):
        monkeypatch.setitem(KNOWN, name, Provider("pics", "", None))


@pytest.fixture
async def host(aiohttp_server):  # type: ignore[no-untyped-def]
    return await image_host(aiohttp_server)


@contextlib.asynccontextmanager
async def cloud(tmp_path, backends: list[dict]):  # type: ignore[no-untyped-def]
    async with run_role(cloud_role.ROLE, tmp_path, backends=backends) as url:
        async def listed() -> bool:
            async with aiohttp.ClientSession() as s, s.get(url + "/v1/models") as r:
                return len((await r.json())["data"]) > 0
        await until(listed, timeout=10)
        yield openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


async def test_image_urls_become_bytes_for_a_bytes_only_api(pics_kind, aiohttp_server,
                                                            host, tmp_path):
    image_host, hits = host
    a, b = [await aiohttp_server(pics.make_app()) for _ in range(2)]
    async with cloud(tmp_path, [
            {"name": "pics-a", "url": url_of(a), "priority": 1, "options": {
                "vision": ["pic-see"], "image_max_bytes": 10_000}},
            {"name": "pics-b", "url": url_of(b), "priority": 2}]) as sdk:
        got = await sdk.chat.completions.create(
            model="pic-see", messages=see(f"{image_host}/cat.png", f"data:image/png;base64,{B64}"))
        assert got.choices[0].message.content == "2 image(s): image/png,image/png"
        (sent,) = a.app[pics.SEEN]
        assert [i["b64"] for i in sent["images"]] == [B64, B64] and hits == ["/cat.png"]
        # a model options.vision leaves out: nothing sent to pics-a, whose refusal is
        # "not here": pics-b lists the model and sees (tests/backends/test_vision_routing)
        got = await sdk.chat.completions.create(model="pic-1", messages=see(
            f"{image_host}/cat.png"))
        assert got.choices[0].message.content == "1 image(s): image/png"
        assert len(a.app[pics.SEEN]) == 1 and len(b.app[pics.SEEN]) == 1 and len(hits) == 2
        b.app[pics.SEEN].clear()
        # an image that cannot be fetched: the client's 400 naming it, no failover
        with pytest.raises(openai.BadRequestError) as exc:
            await sdk.chat.completions.create(model="pic-see", messages=see(
                f"{image_host}/nope.png"))
        assert exc.value.body["code"] == "image_fetch_failed"
        assert f"{image_host}/nope.png" in exc.value.body["message"]
        assert exc.value.body["param"] == "messages[0].content[1].image_url"
        assert len(a.app[pics.SEEN]) == 1 and b.app[pics.SEEN] == []
        # text only: nothing fetched, sent as it is
        got = await sdk.chat.completions.create(model="pic-1", messages=[
            {"role": "user", "content": "hi"}])
        assert got.choices[0].message.content == "0 image(s): " and len(hits) == 2
        await sdk.close()


async def test_options_vision_on_an_openai_compatible_backend(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake_openai.make_app())
    model = fake_openai.MODELS[0]
    async with cloud(tmp_path, [{"name": "local", "url": url_of(server) + "/v1",
                                 "options": {"vision": False}}]) as sdk:
        with pytest.raises(openai.BadRequestError) as exc:
            await sdk.chat.completions.create(model=model, messages=see(
                f"data:image/png;base64,{B64}"), stream=True)
        assert exc.value.body["code"] == "vision_unsupported"
        sent = [r for r in server.app[fake_openai.KNOBS].requests
                if r["path"].endswith("/chat/completions")]
        assert sent == []
        got = await sdk.chat.completions.create(model=model, messages=[
            {"role": "user", "content": "hi"}])
        assert got.choices[0].message.content
        await sdk.close()


async def test_a_bad_vision_option_is_refused_at_start(tmp_path):
    from eldric.errors import ConfigError
    with pytest.raises(ConfigError, match="options.vision"):
        async with cloud(tmp_path, [{"name": "x", "url": "http://127.0.0.1:9/v1",
                                     "options": {"vision": "yes"}}]):
            pass


async def test_the_worker_fronting_a_bytes_only_api(monkeypatch, aiohttp_server, host,
                                                   tmp_path):
    """The same through the worker (--backend pics): its image URLs fetched by call.send,
    --backend-options' vision narrowing it, rerank and embeddings to the adapter's ops."""
    monkeypatch.setitem(KINDS, "pics", BackendKind("", "", tuple(pics.PICS.ops),
                                                  adapter=pics.PICS))
    image_host, hits = host
    server = await aiohttp_server(pics.make_app())
    async with run_role(PICS_WORKER, tmp_path, backend="pics", backend_url=url_of(server),
                        backend_options={"vision": ["pic-see"]}) as url:
        async def listed() -> bool:
            async with aiohttp.ClientSession() as s, s.get(url + "/v1/models") as r:
                return r.status == 200 and len((await r.json())["data"]) == 2
        await until(listed, timeout=10)
        sdk = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        got = await sdk.chat.completions.create(model="pic-see", messages=see(
            f"{image_host}/cat.png"))
        assert got.choices[0].message.content == "1 image(s): image/png"
        assert server.app[pics.SEEN][-1]["images"][0]["b64"] == B64
        with pytest.raises(openai.BadRequestError) as exc:
            await sdk.chat.completions.create(model="pic-1", messages=see(
                f"{image_host}/cat.png"))
        assert exc.value.body["code"] == "vision_unsupported" and hits == ["/cat.png"]
        emb = await sdk.embeddings.create(model="pic-1", input="a b c")
        assert emb.data[0].embedding == [5.0, 0.5]
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/rerank", json={
                    "model": "pic-1", "query": "b", "documents": ["a", "b"]}) as r:
                assert r.status == 200
                assert [x["index"] for x in (await r.json())["results"]] == [1, 0]
            async with s.get(url + "/health") as r:
                assert {"/v1/embeddings", "/v1/rerank"} <= set((await r.json())["paths"])
        await sdk.close()
