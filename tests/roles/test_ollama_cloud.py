"""The `ollama` client against the cloud worker with an OpenAI-compatible provider (the
fake vLLM-like server): Ollama's API translated by the cloud worker, directly and
through a router and an edge; a provider dying mid-stream ends the NDJSON in an error."""

from __future__ import annotations

import json

import ollama
import pytest

from tests.conftest import free_port, run_cloud, run_eldric, url_of
from tests.fakes import openai_server
from tests.fakes.openai_server import KNOBS
from tests.roles.ollama_hops import KEY, client

MODEL, EMBEDDER = openai_server.MODELS
MSGS = [{"role": "user", "content": "hi"}]


async def test_ollamas_api_through_the_cloud_worker(aiohttp_server, tmp_path):
    provider = await aiohttp_server(openai_server.make_app(), port=free_port())
    knobs = provider.app[KNOBS]
    async with run_cloud(tmp_path / "c", f"vllm:{url_of(provider)}/v1") as c, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=c["cloud"]) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], api_key=KEY) as e:
        for hop, url in (("cloud", c["cloud"]), ("router", r["router"]), ("edge", e["edge"])):
            oc = client(url)
            reply = await oc.chat(MODEL, MSGS, options={"num_predict": 50, "temperature": 0})
            assert (reply.message.content, reply.eval_count) == (" w0 w1 w2 w3 w4", 5), hop
            sent = json.loads(knobs.requests[-1]["body"])
            assert (sent["max_tokens"], sent["temperature"]) == (50, 0)
            parts = [p async for p in await oc.chat(MODEL, MSGS, stream=True)]
            assert "".join(p.message.content for p in parts) == " w0 w1 w2 w3 w4"
            assert parts[-1].done and parts[-1].prompt_eval_count == 3
            assert (await oc.generate(MODEL, "hi")).response == " w0 w1 w2 w3 w4"
            raw = await oc.generate(MODEL, "[INST] hi [/INST]", raw=True)
            assert raw.response == " and so on"
            assert knobs.requests[-1]["path"] == "/v1/completions"
            assert [list(v) for v in (await oc.embed(EMBEDDER, "x")).embeddings] == [
                [0.1, 0.2, 0.3]]
            assert set(openai_server.MODELS) <= {m.model for m in (await oc.list()).models}
            assert (await oc.show(MODEL)).capabilities == ["completion"]
            with pytest.raises(ollama.ResponseError) as err:
                await oc.chat("no-such-model", MSGS)
            assert err.value.status_code == 404


async def test_a_provider_dying_mid_stream_ends_in_an_error_line(aiohttp_server, tmp_path):
    provider = await aiohttp_server(openai_server.make_app(), port=free_port())
    provider.app[KNOBS].die_after = 2
    async with run_cloud(tmp_path, f"vllm:{url_of(provider)}/v1") as c:
        got = []
        with pytest.raises(ollama.ResponseError):
            async for part in await client(c["cloud"]).chat(MODEL, MSGS, stream=True):
                got.append(part.message.content)
        assert got == [" w0", " w1"]
