"""Images to a model that cannot see them: the embedded SmolLM2 (real llama.cpp, no
multimodal projector) is refused 400 vision_unsupported in the client's API shape, by the
worker itself and through router and edge; its text requests still go through.

Run once: one worker with the real model serves every case of the module."""

from __future__ import annotations

import aiohttp
import anthropic
import openai
import ollama
import pytest

from tests.backends.imagery import B64, DATA, see
from tests.conftest import run_eldric
from tests.real_model import MODEL, ready, require_real_model

require_real_model()

SEE = see(DATA, text="What is in this picture?")


def _refused(exc: openai.APIStatusError) -> None:
    assert exc.status_code == 400
    err = exc.body if isinstance(exc.body, dict) else {}
    err = err.get("error", err)
    assert err["code"] == "vision_unsupported" and err["param"] == "messages"
    assert MODEL in err["message"]


async def test_images_to_smollm2_are_refused_on_every_hop(tmp_path):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded") as w:
        await ready(w["worker"])
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=w["worker"]) as r, \
                run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                           bind="127.0.0.1", routers=r["router"], api_key="sk-v") as e:
            for base in (w["worker"], r["router"], e["edge"]):
                client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-v",
                                            max_retries=0)
                for stream in (False, True):
                    with pytest.raises(openai.BadRequestError) as exc:
                        await client.chat.completions.create(model=MODEL, messages=SEE,
                                                             max_tokens=4, stream=stream)
                    _refused(exc.value)
                # text only: the same model answers
                text = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "Say hi."}],
                    max_tokens=4, temperature=0)
                assert text.choices[0].message.content
                await client.close()
            # the router kept the worker: a 400 is the client's, not a broken backend
            async with aiohttp.ClientSession() as s:
                async with s.get(r["router"] + "/api/v1/workers") as resp:
                    (worker,) = (await resp.json())["workers"]
                    assert worker["healthy"] is True
            edge = e["edge"]
            # Anthropic's Messages API (translated by the worker): its error shape
            ac = anthropic.AsyncAnthropic(base_url=edge, api_key="sk-v", max_retries=0)
            with pytest.raises(anthropic.BadRequestError) as aexc:
                await ac.messages.create(model=MODEL, max_tokens=4, messages=[
                    {"role": "user", "content": [
                        {"type": "image", "source": {"type": "base64",
                                                     "media_type": "image/png", "data": B64}},
                        {"type": "text", "text": "What is it?"}]}])
            assert aexc.value.body["type"] == "error"
            assert aexc.value.body["error"]["code"] == "vision_unsupported"
            await ac.close()
            # Ollama's /api/chat: {"error": "..."}
            oc = ollama.AsyncClient(host=edge, headers={"Authorization": "Bearer sk-v"})
            with pytest.raises(ollama.ResponseError) as oexc:
                await oc.chat(model=MODEL, messages=[
                    {"role": "user", "content": "What is it?", "images": [B64]}])
            assert oexc.value.status_code == 400 and "does not take images" in oexc.value.error
            # OpenAI's Responses API (translated): OpenAI's shape
            rc = openai.AsyncOpenAI(base_url=edge + "/v1", api_key="sk-v", max_retries=0)
            with pytest.raises(openai.BadRequestError) as rexc:
                await rc.responses.create(model=MODEL, max_output_tokens=16, input=[
                    {"role": "user", "content": [
                        {"type": "input_text", "text": "What is it?"},
                        {"type": "input_image", "image_url": f"data:image/png;base64,{B64}"}]}])
            _refused(rexc.value)
            await rc.close()
