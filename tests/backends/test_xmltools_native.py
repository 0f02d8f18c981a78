"""XML tool emulation in eldric.backends.call.send, through both roles: a native adapter
whose chat has no tools (the tiny test adapter, made ``tools="xml"``) gets the tools in
its prompt, and its text's <tool_call> block comes back as OpenAI tool_calls, whole and
streamed (the block split across the native stream's token events)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from eldric.roles.cloud import kinds as cloud_kinds
from eldric.roles.worker.backends import KINDS, BackendKind
from tests.backends import tiny
from tests.backends.test_call import ROLES, _sdk, front

CALC = {"type": "function", "function": {"name": "calculate", "description": "math",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}}
SAID = ["Sure. <tool_", 'call>\n{"name": "calculate", ', '"arguments": {"expression": "1+1"}}',
        "\n</tool_call>"]


@pytest.fixture
def xml_tiny(tiny_kind, monkeypatch):  # type: ignore[no-untyped-def]
    adapter = dataclasses.replace(tiny.TINY, tools="xml")
    monkeypatch.setitem(KINDS, "tiny", BackendKind("", "", tuple(adapter.ops),
                                                  adapter=adapter, tools="xml"))
    monkeypatch.setitem(cloud_kinds.PROVIDER_KINDS, "tiny", cloud_kinds._native(adapter))
    monkeypatch.setattr(tiny, "TOKENS", SAID)  # what the fake's model writes
    return adapter


@ROLES
async def test_a_native_adapter_without_tools_gets_them_emulated(role, xml_tiny,
                                                                 aiohttp_server, tmp_path):
    fake = await aiohttp_server(tiny.make_app())
    knobs = fake.app[tiny.KNOBS]
    async with front(role, tmp_path, fake) as url:
        sdk = _sdk(url)
        ask = [{"role": "user", "content": "1+1?"}]
        r = await sdk.chat.completions.create(model="tiny-1", messages=ask, tools=[CALC])
        prompt = knobs.requests[-1]["prompt"]
        assert prompt.startswith("System: # Tools") and '"name": "calculate"' in prompt
        choice = r.choices[0]
        assert (choice.finish_reason, choice.message.content) == ("tool_calls", "Sure. ")
        (call,) = choice.message.tool_calls
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "calculate", {"expression": "1+1"})

        text, args, finish = "", "", None
        async for chunk in await sdk.chat.completions.create(
                model="tiny-1", messages=ask, tools=[CALC], stream=True):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                args += "".join(tc.function.arguments or ""
                                for tc in chunk.choices[0].delta.tool_calls or [])
                finish = chunk.choices[0].finish_reason or finish
        assert (text, json.loads(args), finish) == ("Sure. ", {"expression": "1+1"}, "tool_calls")

        # the tool's result goes back as text the tool-less API can take
        history = [*ask, {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function", "function": {
                "name": "calculate", "arguments": call.function.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "2"}]
        await sdk.chat.completions.create(model="tiny-1", messages=history, tools=[CALC])
        assert "User: <tool_response>\n2\n</tool_response>" in knobs.requests[-1]["prompt"]
        await sdk.close()
