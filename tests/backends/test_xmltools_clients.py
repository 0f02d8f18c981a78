"""XML tool emulation composed with every client API, on the native adapters whose APIs
have no tools (KServe/Triton v2 generate, TGI native), through the worker and the cloud
role: Chat Completions (openai SDK), Messages (anthropic SDK), Responses (openai SDK)
and Ollama's /api/chat (ollama client), each whole and streamed, the model's
<tool_call> block split across the native stream's token events in odd places (inside
the tag, inside the JSON, between the closing tag's characters)."""

from __future__ import annotations

import json

import anthropic
import ollama
import pytest

from tests.backends.fronts import ROLES, client, fake_starter, front
from tests.fakes import kserve as fake_kserve
from tests.fakes import tgi as fake_tgi

CALC = {"type": "function", "function": {"name": "calculate", "description": "math",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}}
# what the fake model writes, token by token
SAID = ["Ok", ". <", "tool", "_ca", 'll>\n{"na', 'me": "calc', 'ulate", "argu',
        'ments": {"expression": "2', '+3"}}\n</', "tool_c", "all", ">"]
ASK = [{"role": "user", "content": "2+3?"}]
VLLM_INPUTS = {"exclude_input_in_output": True, "return_finish_reason": True}
KINDS = pytest.mark.parametrize("kind", ["kserve", "tgi-native"])


@pytest.fixture
def fakes(aiohttp_server):  # type: ignore[no-untyped-def]
    return {"kserve": fake_starter(aiohttp_server, fake_kserve.make_app),
            "tgi-native": fake_starter(aiohttp_server, fake_tgi.make_app)}


def _spec(kind: str, url: str) -> dict:
    options = {"inputs": VLLM_INPUTS} if kind == "kserve" else {}
    return {"name": "b", "type": kind, "url": url, "options": options}


def _prompt(knobs) -> str:  # type: ignore[no-untyped-def]
    body = knobs.requests[-1]["body"]
    return body.get("text_input") or body.get("inputs")


@ROLES
@KINDS
async def test_every_client_api_gets_tool_calls_from_a_tool_less_api(fakes, role, kind,
                                                                      tmp_path):
    url, knobs = await fakes[kind]()
    knobs.words = SAID
    model = "llama" if kind == "kserve" else fake_tgi.MODEL
    async with front(role, tmp_path, _spec(kind, url)) as urls:
        base = urls["url"]
        # Chat Completions, whole and streamed
        oai = client(urls)
        r = await oai.chat.completions.create(model=model, messages=ASK, tools=[CALC])
        assert "<tools>" in _prompt(knobs) and '"name": "calculate"' in _prompt(knobs)
        (call,) = r.choices[0].message.tool_calls
        assert (r.choices[0].finish_reason, r.choices[0].message.content) == ("tool_calls", "Ok. ")
        assert json.loads(call.function.arguments) == {"expression": "2+3"}
        text, args, finish = "", "", None
        async for ch in await oai.chat.completions.create(model=model, messages=ASK,
                                                          tools=[CALC], stream=True):
            if ch.choices:
                text += ch.choices[0].delta.content or ""
                args += "".join(t.function.arguments or ""
                                for t in ch.choices[0].delta.tool_calls or [])
                finish = ch.choices[0].finish_reason or finish
        assert (text, json.loads(args), finish) == ("Ok. ", {"expression": "2+3"}, "tool_calls")

        # Responses
        resp = await oai.responses.create(model=model, input="2+3?", tools=[{
            "type": "function", "name": "calculate", "description": "math",
            "parameters": CALC["function"]["parameters"]}])
        calls = [o for o in resp.output if o.type == "function_call"]
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [
            ("calculate", {"expression": "2+3"})]
        events = [e.type async for e in await oai.responses.create(
            model=model, input="2+3?", stream=True, tools=[{
                "type": "function", "name": "calculate",
                "parameters": CALC["function"]["parameters"]}])]
        assert "response.function_call_arguments.done" in events
        assert events[-1] == "response.completed"
        await oai.close()

        # Messages
        a = anthropic.AsyncAnthropic(base_url=base, api_key="x", max_retries=0)
        tool = {"name": "calculate", "description": "math",
                "input_schema": CALC["function"]["parameters"]}
        m = await a.messages.create(model=model, max_tokens=50, messages=ASK, tools=[tool])
        assert m.stop_reason == "tool_use"
        (use,) = [b for b in m.content if b.type == "tool_use"]
        assert (use.name, use.input) == ("calculate", {"expression": "2+3"})
        async with a.messages.stream(model=model, max_tokens=50, messages=ASK,
                                     tools=[tool]) as s:
            final = await s.get_final_message()
        assert final.stop_reason == "tool_use"
        assert [b.input for b in final.content if b.type == "tool_use"] == [{"expression": "2+3"}]
        await a.close()

        # Ollama's /api/chat
        o = ollama.AsyncClient(host=base)
        ot = {"type": "function", "function": CALC["function"]}
        got = await o.chat(model=model, messages=ASK, tools=[ot], stream=False)
        assert [(t.function.name, dict(t.function.arguments))
                for t in got.message.tool_calls or []] == [("calculate", {"expression": "2+3"})]
        streamed = [c async for c in await o.chat(model=model, messages=ASK, tools=[ot],
                                                  stream=True)]
        assert [(t.function.name, dict(t.function.arguments)) for c in streamed
                for t in c.message.tool_calls or []] == [("calculate", {"expression": "2+3"})]
