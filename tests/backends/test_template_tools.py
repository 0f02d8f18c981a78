"""Tools on a template backend: the XML emulation puts them in the system prompt, so a
template that sends the model neither {{prompt}}, {{messages}} nor {{system}} (the docs'
{{last_user}} examples: a Meta LCM / custom server) cannot carry them. Such a tool
request is a clear 400 naming the backend's template, not tools silently dropped; a
template with {{prompt}} carries them, and text requests are unchanged."""

from __future__ import annotations

import openai
import pytest

from tests.backends.fronts import client, fake_starter, front
from tests.backends.test_template_examples import pointed
from tests.fakes import predict

CALC = {"type": "function", "function": {"name": "calculate", "description": "math",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}}
ASK = [{"role": "user", "content": "2+3?"}]


@pytest.fixture
def server(aiohttp_server):  # type: ignore[no-untyped-def]
    return fake_starter(aiohttp_server, predict.make_app)


@pytest.mark.parametrize("role", ["worker", "cloud"])
async def test_tools_on_a_template_that_cannot_carry_them_are_a_400(server, tmp_path, role):
    url, knobs = await server()
    async with front(role, tmp_path, pointed("custom-stream", url)) as urls:
        oai = client(urls)
        sent = len(knobs.requests)
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as exc:
                await oai.chat.completions.create(model="lcm", messages=ASK, tools=[CALC],
                                                  stream=stream)
            assert exc.value.body["code"] == "tools_unsupported"
            assert exc.value.body["param"] == "tools"
            assert "{{last_user}}" in exc.value.body["message"]
        assert len(knobs.requests) == sent  # nothing was sent
        r = await oai.chat.completions.create(model="lcm", messages=ASK)  # text: as before
        assert r.choices[0].message.content == predict.TEXT
        await oai.close()


async def test_a_prompt_template_carries_the_tools(server, tmp_path):
    url, knobs = await server()
    knobs.models = ["llama"]
    async with front("cloud", tmp_path, pointed("torchserve", url)) as urls:
        oai = client(urls)
        await oai.chat.completions.create(model="llama", messages=ASK, tools=[CALC])
        assert "<tools>" in knobs.requests[-1]["body"]["prompt"]
        await oai.close()
