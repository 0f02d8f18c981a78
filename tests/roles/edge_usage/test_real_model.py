"""Usage counted against the real embedded llama.cpp (SmolLM2-135M): one worker start,
one test. The edge counts exactly what llama.cpp states, whole and streamed (its usage
chunk asked for by the edge, taken out again), and the estimate is measured against
SmolLM2's own prompt counts on the tests' prompts (docs/design-notes.md, "Usage")."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from eldric.roles.edge.usage import estimate
from tests.conftest import until
from tests.real_model import MODEL, ready, require_real_model
from tests.roles.edge_usage.helpers import cluster, metrics, records

require_real_model()

DATA = Path(__file__).parents[2] / "data" / "knowledge_prompts.jsonl"


async def test_real_model_counted_exactly_and_the_estimate_measured(tmp_path):
    async with cluster(tmp_path, worker_flags={"backend": "embedded"}) as (edge, worker):
        await ready(worker, timeout=60)
        await ready(edge, timeout=30)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Name three colours."}],
                "max_tokens": 12, "temperature": 0}
        async with aiohttp.ClientSession() as s:
            async with s.post(edge + "/v1/chat/completions", json=body) as r:
                assert r.status == 200
                usage = (await r.json())["usage"]
            async with s.post(edge + "/v1/chat/completions", json={**body, "stream": True}) as r:
                assert r.status == 200
                streamed = await r.read()
            assert b'"choices":[]' not in streamed  # the usage chunk, not asked: taken out
            rows = await until(lambda: len(records(edge)) == 2 and records(edge), timeout=10)
            for row in rows:  # temperature 0: the same prompt, the same completion
                assert (row.tokens.prompt, row.tokens.completion, row.tokens.estimated) == \
                    (usage["prompt_tokens"], usage["completion_tokens"], False)
                assert row.backend == worker and row.cost is None  # a local model: unpriced
            m = await metrics(edge)
            assert m[("eldric_edge_tokens_total", "anonymous", MODEL, "prompt")] == \
                2 * usage["prompt_tokens"]
            # the estimate against SmolLM2's own count of the prompts (max_tokens 1): the
            # chat template's own tokens (its default system prompt) are the count of a
            # one-token message less one; the text is the rest
            async def counted(content: str) -> int:
                one = {"model": MODEL, "max_tokens": 1,
                       "messages": [{"role": "user", "content": content}]}
                async with s.post(edge + "/v1/chat/completions", json=one) as r:
                    reply = await r.json()
                assert r.status == 200, reply
                return reply["usage"]["prompt_tokens"]

            template = await counted("a") - 1
            prompts = [json.loads(line)["prompt"] for line in DATA.read_text().splitlines()]
            real = guess = 0
            for prompt in prompts[:40]:
                real += await counted(prompt) - template
                guess += estimate.text_tokens(prompt)
        ratio = guess / real
        print(f"SmolLM2's template: {template} tokens; the estimate of 40 prompts' text: "
              f"{guess} tokens, SmolLM2's {real}: {ratio:.2f}")
        assert 0.9 < ratio < 1.1
