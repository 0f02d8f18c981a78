"""A router whose workers differ in vision: a worker's 400 vision_unsupported says "not
here" (its backend cannot see; another worker serving the model may), so the router tries
the next worker; when none can see, the client gets that 400 as the worker sent it. No
worker is held against it: the request was the one that did not fit."""

from __future__ import annotations

import aiohttp
import anthropic
import openai
import pytest

from tests.backends.imagery import DATA, see
from tests.conftest import run_eldric

MODEL = "eldric-mock"


async def _healthy(router: str) -> list[bool]:
    async with aiohttp.ClientSession() as s:
        async with s.get(router + "/api/v1/workers") as resp:
            return [w["healthy"] for w in (await resp.json())["workers"]]


async def test_images_go_to_the_worker_that_can_see(tmp_path):
    async with run_eldric("worker", tmp_path / "blind", port=0, bind="127.0.0.1",
                          backend="mock", vision=False) as blind, \
            run_eldric("worker", tmp_path / "sees", port=0, bind="127.0.0.1",
                       backend="mock") as sees, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       strategy="round_robin",
                       workers=f"{blind['worker']},{sees['worker']}") as r:
        c = openai.AsyncOpenAI(base_url=r["router"] + "/v1", api_key="x", max_retries=0)
        try:
            for stream in (False, True, False, True):  # round robin: each worker first
                if stream:
                    chunks = [ch async for ch in await c.chat.completions.create(
                        model=MODEL, messages=see(DATA), stream=True)]
                    assert chunks
                else:
                    reply = await c.chat.completions.create(model=MODEL, messages=see(DATA))
                    assert reply.choices[0].message.content
        finally:
            await c.close()
        a = anthropic.AsyncAnthropic(base_url=r["router"], api_key="x", max_retries=0)
        try:  # the same through a translated client API (the worker's dialect)
            for _ in range(2):
                m = await a.messages.create(model=MODEL, max_tokens=8, messages=[{
                    "role": "user", "content": [
                        {"type": "text", "text": "what is it?"},
                        {"type": "image", "source": {"type": "base64",
                                                     "media_type": "image/png",
                                                     "data": DATA.split(",", 1)[1]}}]}])
                assert m.content
        finally:
            await a.close()
        assert await _healthy(r["router"]) == [True, True]


async def test_no_worker_can_see_is_the_workers_400(tmp_path):
    async with run_eldric("worker", tmp_path / "a", port=0, bind="127.0.0.1",
                          backend="mock", vision=False) as a, \
            run_eldric("worker", tmp_path / "b", port=0, bind="127.0.0.1",
                       backend="mock", vision=False) as b, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=f"{a['worker']},{b['worker']}") as r:
        c = openai.AsyncOpenAI(base_url=r["router"] + "/v1", api_key="x", max_retries=0)
        try:
            for stream in (False, True):
                with pytest.raises(openai.BadRequestError) as exc:
                    await c.chat.completions.create(model=MODEL, messages=see(DATA),
                                                    stream=stream)
                assert exc.value.body["code"] == "vision_unsupported"
                assert exc.value.body["param"] == "messages"
            text = await c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}])
            assert text.choices[0].message.content
        finally:
            await c.close()
        assert await _healthy(r["router"]) == [True, True]


async def test_the_cloud_tries_the_next_backend_that_can_see(aiohttp_server, tmp_path):
    """Two backends list the model, the first (by priority) cannot see: the image goes to
    the second; the first got nothing and stays in rotation for text."""
    from eldric.roles import cloud as cloud_role
    from tests.conftest import run_role, until, url_of
    from tests.fakes import openai_server as fake_openai

    blind_srv = await aiohttp_server(fake_openai.make_app())
    sees_srv = await aiohttp_server(fake_openai.make_app())
    model = fake_openai.MODELS[0]
    backends = [{"name": "blind", "type": "openai_compatible", "url": url_of(blind_srv) + "/v1",
                 "priority": 1, "options": {"vision": False}},
                {"name": "sees", "type": "openai_compatible", "url": url_of(sees_srv) + "/v1",
                 "priority": 2}]

    def chats(srv) -> int:  # type: ignore[no-untyped-def]
        return len([r for r in srv.app[fake_openai.KNOBS].requests
                    if r["path"].endswith("/chat/completions")])

    async with run_role(cloud_role.ROLE, tmp_path, backends=backends) as url:
        async def listed() -> bool:
            async with aiohttp.ClientSession() as s, s.get(url + "/v1/models") as r:
                return len((await r.json())["data"]) >= 2
        await until(listed, timeout=10)
        c = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        try:
            for stream in (False, True):
                r = await c.chat.completions.with_raw_response.create(
                    model=model, messages=see(DATA), stream=stream)
                assert r.headers["X-Eldric-Backend"] == "sees"
            assert (chats(blind_srv), chats(sees_srv)) == (0, 2)
            r = await c.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": "hi"}])
            assert r.headers["X-Eldric-Backend"] == "blind"  # text: the first, as before
        finally:
            await c.close()
