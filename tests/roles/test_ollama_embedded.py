"""The `ollama` client against the real embedded llama.cpp (SmolLM2-135M), translated at
the worker: one model load for the whole check (the model is the slow part). The same
answer as llama.cpp's own Chat Completions at temperature 0; /api/show from the GGUF."""

from __future__ import annotations

import openai

from tests.roles.ollama_hops import client, hops
from tests.roles.test_worker_embedded import MODEL, MSGS, _ready

OPTIONS = {"temperature": 0, "num_predict": 24}


async def test_the_real_model_through_every_hop(tmp_path):
    async with hops(tmp_path, worker_ready=_ready, backend="embedded",
                    embeddings=True) as urls:
        direct = openai.AsyncOpenAI(base_url=urls["worker"] + "/v1", api_key="x")
        want = (await direct.chat.completions.create(
            model=MODEL, messages=MSGS, max_tokens=24, temperature=0)).choices[0].message.content
        await direct.close()
        assert want
        for hop, url in urls.items():
            c = client(url)
            reply = await c.chat(MODEL, MSGS, options=OPTIONS)
            assert reply.message.content == want, hop
            assert reply.eval_count and reply.prompt_eval_count and reply.done
            parts = [p async for p in await c.chat(MODEL, MSGS, options=OPTIONS, stream=True)]
            assert "".join(p.message.content for p in parts) == want
            assert parts[-1].done and parts[-1].eval_count == reply.eval_count
            assert (await c.generate(MODEL, MSGS[0]["content"], options=OPTIONS)).response \
                == want  # the prompt as one user turn: the same chat
            assert [m.model for m in (await c.list()).models] == [MODEL]
            vectors = (await c.embed(MODEL, ["red", "green"])).embeddings
            assert len(vectors) == 2 and len(vectors[0]) > 8
        shown = await client(urls["edge"]).show(MODEL)
        assert shown.modelinfo["general.architecture"] == "llama"
        assert shown.modelinfo["llama.context_length"] > 0
        assert shown.details.family == "llama" and shown.details.format == "gguf"
        assert shown.capabilities == ["completion", "embedding"]
