"""Images to Anthropic, end to end: the openai SDK's image parts (a data: URL and an
http URL), a Responses input_image and an Ollama client's base64 images, through edge ->
router -> cloud, reach the (fake) Messages API as its image blocks (base64 or url
source, as wire/anthropic_egress translates them)."""

from __future__ import annotations

import aiohttp
import ollama
import openai

from tests.backends.imagery import B64
from tests.conftest import run_cloud, run_eldric, until, url_of
from tests.fakes import anthropic as fake

URL = "https://example.com/cat.jpg"  # Anthropic fetches it itself: eldric sends the URL


def _images(request: dict) -> list[dict]:
    return [b["source"] for m in request["body"]["messages"] for b in m["content"]
            if isinstance(m["content"], list) and b["type"] == "image"]


async def test_images_reach_anthropic_as_its_blocks(tmp_path, aiohttp_server):
    server = await aiohttp_server(fake.make_app())
    knobs = server.app[fake.KNOBS]
    async with run_cloud(tmp_path / "c", f"anthropic:{url_of(server)}:{fake.API_KEY}") as c, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=c["cloud"], health_interval=200) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], api_key="sk-a") as e:
        edge = e["edge"]

        async def routable() -> bool:
            async with aiohttp.ClientSession() as s, s.get(r["router"] + "/v1/models") as resp:
                return fake.MODEL in {m["id"] for m in (await resp.json())["data"]}
        await until(routable, timeout=10)
        sdk = openai.AsyncOpenAI(base_url=edge + "/v1", api_key="sk-a", max_retries=0)
        msgs = [{"role": "user", "content": [
            {"type": "text", "text": "text"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}},
            {"type": "image_url", "image_url": {"url": URL, "detail": "low"}}]}]
        for stream in (False, True):
            got = await sdk.chat.completions.create(model=fake.MODEL, messages=msgs,
                                                    max_tokens=50, stream=stream)
            if stream:
                text = "".join([c.choices[0].delta.content or "" async for c in got
                                if c.choices])
            else:
                text = got.choices[0].message.content
            assert text
            assert _images(knobs.requests[-1]) == [
                {"type": "base64", "media_type": "image/png", "data": B64},
                {"type": "url", "url": URL}]
        # the Responses API's input_image
        await sdk.responses.create(model=fake.MODEL, max_output_tokens=50, input=[
            {"role": "user", "content": [{"type": "input_text", "text": "text"},
                                         {"type": "input_image", "image_url": URL}]}])
        assert _images(knobs.requests[-1]) == [{"type": "url", "url": URL}]
        # an image type Anthropic does not take: eldric's 400, before it is sent
        n = len(knobs.requests)
        try:
            await sdk.chat.completions.create(model=fake.MODEL, max_tokens=5, messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {
                    "url": "data:image/bmp;base64,Qk0="}}]}])
            raise AssertionError("a bmp was accepted")
        except openai.BadRequestError as exc:
            assert "image/bmp" in exc.body["message"]
        assert len(knobs.requests) == n
        await sdk.close()
        # an Ollama client's base64 images (Ollama's /api/chat, translated)
        oc = ollama.AsyncClient(host=edge, headers={"Authorization": "Bearer sk-a"})
        reply = await oc.chat(model=fake.MODEL, stream=False, messages=[
            {"role": "user", "content": "text", "images": [B64]}])
        assert reply.message.content
        assert _images(knobs.requests[-1]) == [
            {"type": "base64", "media_type": "image/png", "data": B64}]
