"""The tool loop on a real model: SmolLM2-135M through edge -> router -> embedded worker,
with the calculator plugin's tool offered. SmolLM2-135M on the embedded llama.cpp does not
choose to call a tool (asked to use it, it answers in prose, even with the tools in its
prompt by the worker's XML emulation, eldric.wire.xmltools; a call forced by tool_choice
is tests/backends/test_xmltools_real.py): the full round trip
is proven against the scripted backend's exact OpenAI tool calls (test_tools.py). What
the real model proves: a request with the plugin's tools added is one the real backend
takes, and its text answer reaches the client whole and streamed, one round, untouched.

Under CI=true it fails rather than skips: .ci/run installs eldric[local] and the model.
"""

from __future__ import annotations

import os

import openai
import pytest

from tests.real_model import require_real_model
from tests.conftest import run_eldric
from tests.plugins.kit import KEY, edge, plugins_dir, router
from tests.real_model import ready as _ready

require_real_model()

MODEL = "SmolLM2-135M-Instruct"
ASK = [{"role": "user", "content": "Use the calculate tool: what is (17+4)*3.5?"}]


async def test_smollm2_with_the_calculator_offered_answers_through_the_loop(tmp_path):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded") as w:
        await _ready(w["worker"])
        plugins = plugins_dir(tmp_path, "calculator")
        async with router(tmp_path, w["worker"]) as r, edge(tmp_path, r["router"], plugins) as e:
            client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=ASK, max_tokens=24, temperature=0)
            reply = raw.parse()
            assert raw.headers["X-Eldric-Tool-Rounds"] == "0"  # the loop ran, no tool asked
            assert reply.choices[0].message.content.strip()
            assert reply.usage.completion_tokens > 0
            text, pieces = "", 0
            async for chunk in await client.chat.completions.create(
                    model=MODEL, messages=ASK, max_tokens=24, temperature=0, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                    pieces += 1
            assert text.strip() and pieces > 1
            await client.close()
