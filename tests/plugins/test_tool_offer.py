"""Which requests a tool plugin's tools are added to. By default (manifest `offer:
"request"`) only to a request that asks with X-Eldric-Tools: enabling the shipped
calculator (applies_to "*") must not send `tools` to a backend that refuses them. The
manifest's `offer: "always"`, or the plugin's valve `offer`, adds them to every request
for a model the plugin applies to."""

from __future__ import annotations

import json
import shutil

import aiohttp
import openai

from tests.fakes import scripted
from tests.plugins.kit import KEY, edge, router
from tests.roles.plugin_kit import EXAMPLES

M = "m-plain"
ASK = [{"role": "user", "content": "hello"}]
ADMIN = {"Authorization": "Bearer adm"}


def _tools_of(call: scripted.Call) -> list[str]:
    return [t["function"]["name"] for t in call.body.get("tools") or []]


async def test_a_tool_plugin_adds_tools_only_when_asked_by_default_or_by_its_valve(
        tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [M])
    script.on(model=M, text="hi")
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLES / "calculator", plugins / "calculator")  # as shipped
    (plugins / "enabled.json").write_text(json.dumps(["calculator"]))
    async with router(tmp_path, script.url) as r, \
            edge(tmp_path, r["router"], plugins, admin_key="adm") as e:
        url = e["edge"]
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        reply = await client.chat.completions.create(model=M, messages=ASK)
        assert reply.choices[0].message.content == "hi"
        assert "tools" not in script.calls[-1].body  # not asked: nothing added
        await client.chat.completions.create(model=M, messages=ASK,
                                             extra_headers={"X-Eldric-Tools": "calculator"})
        assert _tools_of(script.calls[-1]) == ["calculate"]
        await client.chat.completions.create(model=M, messages=ASK,
                                             extra_headers={"X-Eldric-Tools": "all"})
        assert _tools_of(script.calls[-1]) == ["calculate"]
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/api/v1/plugins", headers=ADMIN) as resp:
                listed = (await resp.json())["plugins"]
            assert listed[0]["offer"] == "request"
            # the valve: offered to every request from now on, no restart
            async with s.put(url + "/api/v1/plugins/calculator/valves", headers=ADMIN,
                             json={"offer": "always"}) as resp:
                assert resp.status == 200, await resp.text()
            await client.chat.completions.create(model=M, messages=ASK)
            assert _tools_of(script.calls[-1]) == ["calculate"]
            await client.chat.completions.create(model=M, messages=ASK,
                                                 extra_headers={"X-Eldric-Tools": "none"})
            assert "tools" not in script.calls[-1].body
            async with s.put(url + "/api/v1/plugins/calculator/valves", headers=ADMIN,
                             json={"offer": "sometimes"}) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["param"] == "offer"
        await client.close()

