"""The swarm end to end on a real model: three SmolLM2-135M members at different
temperatures, `best_of_n` and `synthesize`, through edge -> router -> embedded worker,
streamed, with the official openai SDK. One test (one model load) for both strategies.

Under CI=true it fails rather than skips: .ci/run installs eldric[local] and the model.
"""

from __future__ import annotations

import json
import os
import time

import openai
import pytest

from tests.real_model import require_real_model
from tests.conftest import run_eldric
from tests.real_model import ready as _ready

require_real_model()

MODEL = "SmolLM2-135M-Instruct"
MEMBERS = [{"model": MODEL, "temperature": t, "max_tokens": 24} for t in (0.0, 0.7, 1.3)]
ENSEMBLES = {"smol-best": {"strategy": "best_of_n", "members": MEMBERS},
             "smol-synth": {"strategy": "synthesize", "members": MEMBERS}}
MSGS = [{"role": "user", "content": "Name one colour of the sky."}]


async def _streamed(client: openai.AsyncOpenAI, model: str):  # type: ignore[no-untyped-def]
    """The answer, seconds to its first token, the final `eldric` report, the usage and
    how many pieces the answer came in."""
    start = time.monotonic()
    first, parts, report, usage = None, [], None, None
    async for chunk in await client.chat.completions.create(
            model=model, messages=MSGS, max_tokens=24, stream=True,
            stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.monotonic() - start
            parts.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
        report = (chunk.model_extra or {}).get("eldric") or report
    return "".join(parts), first, report, usage, len(parts)


async def test_best_of_n_and_synthesize_of_three_smollm2_members(tmp_path):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded", parallel=3) as w:
        await _ready(w["worker"])
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=w["worker"], ensembles=json.dumps(ENSEMBLES)) as r, \
                run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                           bind="127.0.0.1", routers=r["router"], api_key="sk-e2e") as e:
            client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key="sk-e2e",
                                        max_retries=0)
            listed = {m.id async for m in client.models.list()}
            assert {"smol-best", "smol-synth", MODEL} <= listed
            for name in ("smol-best", "smol-synth"):
                text, first, report, usage, pieces = await _streamed(client, name)
                assert text.strip(), name
                assert report is not None, f"{name}: no eldric report in the last event"
                calls = report["members"]
                answers = [c for c in calls if c["stage"] == "answer"]
                assert len(answers) == 3 and all(c["outcome"] == "ok" for c in calls)
                assert all(c["model"] == MODEL and c["worker"] == w["worker"] for c in calls)
                # usage: the sum over the members and the judge / synthesis
                assert len(calls) == 4 and usage.completion_tokens == sum(
                    c["usage"]["completion_tokens"] for c in calls)
                if name == "smol-best":  # a member's finished answer, picked
                    assert report["answer"]["by"] == "chosen"
                    assert report["choice"]["by"] in ("judge", "fallback")
                else:  # the merge, relayed token by token as SmolLM2 wrote it
                    assert report["answer"]["by"] == "generated"
                    assert pieces > 1, "the merge came in one piece"
            await client.close()
