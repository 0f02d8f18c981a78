"""XML tool emulation on the real SmolLM2-135M (the embedded llama.cpp): a calculator
round trip through the openai SDK. SmolLM2's chat template has no tools, so llama.cpp
drops a request's `tools` unsaid; the worker emulates them (eldric.wire.xmltools).

A 135M model does not choose to call a tool on its own (asked in prose, it answers in
prose, whatever the prompt), so the call is asked for with tool_choice naming the
function: the emulation then starts the model's reply with the call's opening (llama.cpp
continues a last assistant message), and the model writes the arguments. What is
asserted is the contract, not the model's arithmetic: a parsed call of the offered tool
with JSON-object arguments and finish_reason tool_calls, whole and streamed; the tool's
result sent back as a `tool` message; a final answer in text; and the same call asked
through the anthropic SDK (/v1/messages translated, then emulated: eldric.wire.translate.chain).

One model start for every step (the slow part); under CI=true a missing model fails the
module rather than skipping it (tests/real_model.py).
"""

from __future__ import annotations

import json

import anthropic
import openai

from tests.conftest import run_eldric
from tests.real_model import MODEL, ready, require_real_model

require_real_model()

CALCULATE = {"type": "function", "function": {
    "name": "calculate", "description": "Evaluate an arithmetic expression",
    "parameters": {"type": "object", "properties": {
        "expression": {"type": "string", "description": "the expression, e.g. 2+2"}},
        "required": ["expression"]}}}
FORCED = {"type": "function", "function": {"name": "calculate"}}
ASK = [{"role": "user", "content": "What is 17*3?"}]


async def test_calculator_round_trip_on_smollm2(tmp_path):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="embedded") as w:
        await ready(w["worker"])
        c = openai.AsyncOpenAI(base_url=w["worker"] + "/v1", api_key="none", max_retries=0)
        # 1. the tool offered and asked for: a parsed call
        r = await c.chat.completions.create(model=MODEL, messages=ASK, tools=[CALCULATE],
                                            tool_choice=FORCED, max_tokens=40, temperature=0)
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        (call,) = choice.message.tool_calls
        assert call.function.name == "calculate" and call.id.startswith("call_")
        assert isinstance(json.loads(call.function.arguments).get("expression"), str)
        assert r.usage.completion_tokens > 0  # the backend's own usage, passed on

        # 2. the same streamed: the call arrives as tool_calls deltas, no raw XML text
        name, args, text, finish = "", "", "", None
        async for chunk in await c.chat.completions.create(
                model=MODEL, messages=ASK, tools=[CALCULATE], tool_choice=FORCED,
                max_tokens=40, temperature=0, stream=True):
            d = chunk.choices[0].delta
            text += d.content or ""
            for tc in d.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        assert (name, finish) == ("calculate", "tool_calls") and "<tool_call>" not in text
        assert json.loads(args) == json.loads(call.function.arguments)  # temperature 0

        # 3. the tool's result sent back: a final answer in text
        history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": "calculate", "arguments": call.function.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "51"}]
        final = await c.chat.completions.create(model=MODEL, messages=history,
                                                tools=[CALCULATE], max_tokens=40,
                                                temperature=0)
        answer = final.choices[0]
        assert answer.finish_reason in ("stop", "length") and not answer.message.tool_calls
        assert "51" in answer.message.content  # the tool's result reached the model
        await c.close()

        # 4. the Anthropic SDK's tools: llama.cpp serves /v1/messages itself but would
        # drop them, so the worker translates it and emulates the tools
        a = anthropic.AsyncAnthropic(base_url=w["worker"], api_key="none", max_retries=0)
        m = await a.messages.create(
            model=MODEL, max_tokens=40, messages=ASK,
            extra_body={"temperature": 0},  # (this SDK version has no such argument)
            tools=[{"name": "calculate", "description": "Evaluate an arithmetic expression",
                    "input_schema": CALCULATE["function"]["parameters"]}],
            tool_choice={"type": "tool", "name": "calculate"})
        assert m.stop_reason == "tool_use"
        (use,) = [b for b in m.content if b.type == "tool_use"]
        assert use.name == "calculate" and isinstance(use.input.get("expression"), str)
        await a.close()
