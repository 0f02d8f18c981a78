"""Images and the worker, with fakes: which models may take them (--vision-models,
--no-vision), and an Ollama backend's image URLs fetched into the base64 data its OpenAI
API takes (it refuses URLs), through router and edge too."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from eldric.wire import vision
from tests.conftest import run_eldric, until, url_of
from tests.backends.imagery import DATA, PNG, image_host, see
from tests.fakes import ollama as fake_ollama



@pytest.fixture
async def pictures(aiohttp_server):  # type: ignore[no-untyped-def]
    return await image_host(aiohttp_server)


def test_the_byte_search_and_the_walk():
    chat = b'{"model":"m","messages":[{"role":"user","content":"image_url"}]}'
    assert vision.maybe(chat) and not vision.has_images(chat)  # the mark, but no part
    assert not vision.maybe(chat, "/v1/completions")  # no images on that API
    assert not vision.maybe(b'{"model":"m","messages":[{"role":"user","content":"hi"}]}')
    tool_result = (b'{"messages":[{"role":"user","content":[{"type":"tool_result",'
                   b'"tool_use_id":"t","content":[{"type":"image","source":{}}]}]}]}')
    assert vision.has_images(tool_result, "/v1/messages")
    assert vision.has_images(b'{"images":["AAAA"],"prompt":"x"}', "/api/generate")
    assert not vision.has_images(b'{"images":[],"prompt":"x"}', "/api/generate")
    # a tool whose schema names "images" is not an image
    tools = (b'{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function",'
             b'"function":{"name":"f","parameters":{"properties":{"images":{}}}}}]}')
    assert not vision.has_images(tools)
    assert vision.has_images(b'{"input":[{"role":"user","content":[{"type":"input_image",'
                             b'"image_url":"x"}]}]}', "/v1/responses")
    v = vision.Vision(None, models=["llava*", "*-vl"])
    assert (v.sees("llava:7b"), v.sees("qwen2-vl"), v.sees("llama3")) == (True, True, False)
    assert vision.Vision(True, off=True).sees("x") is False
    assert vision.Vision().checks is False and vision.Vision(False).checks
    assert vision.Vision.of_option(["a*"], None, "b").sees("b") is False
    with pytest.raises(ValueError):
        vision.Vision.of_option("yes", None, "b")


@pytest.mark.parametrize("flags, model, refused", [
    ({"vision_models": "llava*,*-vl"}, "eldric-mock", True),
    ({"vision": False}, "eldric-mock", True),
    ({}, "eldric-mock", False),  # the mock's vision is not known: sent
])
async def test_vision_flags_of_the_worker(tmp_path, flags, model, refused):
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="mock",
                          **flags) as w:
        client = openai.AsyncOpenAI(base_url=w["worker"] + "/v1", api_key="x", max_retries=0)
        try:
            if refused:
                with pytest.raises(openai.BadRequestError) as exc:
                    await client.chat.completions.create(model=model, messages=see(DATA))
                err = exc.value.body
                assert err["code"] == "vision_unsupported" and model in err["message"]
                assert "backend mock" in err["message"]
            else:
                r = await client.chat.completions.create(model=model, messages=see(DATA))
                assert r.choices[0].message.content
            # text always passes
            r = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}])
            assert r.choices[0].message.content
        finally:
            await client.close()


async def test_ollama_backend_gets_image_urls_as_base64(tmp_path, aiohttp_server, pictures):
    host, pics = pictures
    ollama = await aiohttp_server(fake_ollama.make_app())
    got = ollama.app[fake_ollama.IMAGES]
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="ollama", backend_url=url_of(ollama)) as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"]) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], api_key="sk-i") as e:
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key="sk-i", max_retries=0)
        model = fake_ollama.TAGS[0]
        reply = await client.chat.completions.create(model=model,
                                                     messages=see(f"{host}/cat.png"))
        assert reply.choices[0].message.content == "Hello there!"
        assert got == [PNG] and pics == ["/cat.png"]
        parts = [c.choices[0].delta.content async for c in await client.chat.completions.create(
            model=model, messages=see(f"{host}/cat.png"), stream=True) if c.choices]
        assert "".join(p or "" for p in parts) == "Hello there!" and got == [PNG, PNG]
        # a data: URL goes as it came (nothing fetched)
        await client.chat.completions.create(model=model, messages=see(DATA))
        assert got == [PNG] * 3 and len(pics) == 2
        # an image that cannot be fetched: 400 naming it, the backend not asked
        with pytest.raises(openai.BadRequestError) as exc:
            await client.chat.completions.create(model=model,
                                                 messages=see(f"{host}/gone.png"))
        assert exc.value.body["code"] == "image_fetch_failed"
        assert f"{host}/gone.png" in exc.value.body["message"]
        assert exc.value.body["param"] == "messages[0].content[1].image_url"
        assert len(got) == 3
        await client.close()
        # Ollama's own /api/chat with base64 images goes to Ollama as it is
        async with aiohttp.ClientSession() as s:
            async with s.get(w["worker"] + "/health") as resp:
                assert (await resp.json())["backend"]["healthy"] is True


async def test_the_cloud_fetches_image_urls_for_its_ollama_backend(tmp_path, aiohttp_server,
                                                                   pictures):
    host, hits = pictures
    server = await aiohttp_server(fake_ollama.make_app())
    got = server.app[fake_ollama.IMAGES]
    model = fake_ollama.TAGS[0]
    async with run_eldric("cloud", tmp_path, port=0, bind="127.0.0.1",
                          backends=f"ollama:{url_of(server)}") as c:
        async def listed() -> bool:
            async with aiohttp.ClientSession() as s, s.get(c["cloud"] + "/v1/models") as r:
                return model in {m["id"] for m in (await r.json())["data"]}
        await until(listed, timeout=10)
        client = openai.AsyncOpenAI(base_url=c["cloud"] + "/v1", api_key="x", max_retries=0)
        reply = await client.chat.completions.create(model=model,
                                                     messages=see(f"{host}/cat.png"))
        assert reply.choices[0].message.content == "Hello there!"
        assert got == [PNG] and hits == ["/cat.png"]
        # through a translated client API too (Responses -> chat)
        await client.responses.create(model=model, input=[{"role": "user", "content": [
            {"type": "input_text", "text": "what?"},
            {"type": "input_image", "image_url": f"{host}/cat.png"}]}])
        assert got == [PNG, PNG]
        with pytest.raises(openai.BadRequestError) as exc:
            await client.chat.completions.create(model=model,
                                                 messages=see(f"{host}/gone.png"))
        assert exc.value.body["code"] == "image_fetch_failed" and len(got) == 2
        await client.close()
