"""Filters end to end: real children of a real edge, the openai SDK in front, a
scripted backend behind (it records what the model was sent)."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from tests.fakes import scripted
from tests.roles.plugin_kit import MODEL, chat, edge, enable, sdk, status, streamed, write_plugin

SHOUT = """
from eldric import plugin

@plugin.inlet
def inlet(body, user):
    for m in body["messages"]:
        m["content"] = m["content"] + " (via " + user["name"] + ")"
    if "forbidden" in body["messages"][-1]["content"]:
        plugin.refuse("no forbidden words", status=int(plugin.valves.get("status", 403)))
    return body

@plugin.outlet
def outlet(body, user):
    for c in body["choices"]:
        c["message"]["content"] = c["message"]["content"].upper()
    return body

@plugin.stream
def stream(event, user):
    for c in event["choices"]:
        d = c.get("delta") or {}
        if d.get("content") == " drop":
            return None
        if d.get("content"):
            d["content"] = d["content"].upper()
    return event

plugin.run()
"""


async def test_inlet_outlet_stream_end_to_end(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [MODEL, "other"])
    script.on(text="hello drop world")
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "shout", SHOUT, applies_to=["x-*", MODEL])
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        client = sdk(url)
        # installed, not enabled: the edge relays as without plugins
        assert (await chat(client, "hi")).choices[0].message.content == "hello drop world"
        assert script.calls[-1].last_user == "hi"
        await enable(s, url, "shout")
        reply = await chat(client, "hi")
        assert reply.choices[0].message.content == "HELLO DROP WORLD"
        assert script.calls[-1].last_user == "hi (via anonymous)"
        assert await streamed(client, "hi") == "HELLO WORLD"  # " drop" dropped
        st = await status(s, url, "shout")
        assert st["calls"] >= 6 and st["failures"] == 0 and st["p50_ms"] is not None
        # a model no filter applies to passes by them, whole and streamed
        other = await client.chat.completions.create(
            model="other", messages=[{"role": "user", "content": "hi"}])
        assert other.choices[0].message.content == "hello drop world"
        assert script.calls[-1].last_user == "hi"
        stream = await client.chat.completions.create(
            model="other", messages=[{"role": "user", "content": "hi"}], stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream
                        if c.choices]) == "hello drop world"
        assert (await status(s, url, "shout"))["calls"] == st["calls"]
        await client.close()


async def test_refusal_is_the_clients_403_or_400(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [MODEL])
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "shout", SHOUT, valves={
        "type": "object", "properties": {"status": {"type": "integer", "enum": [400, 403]}}})
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "shout")
        client = sdk(url)
        with pytest.raises(openai.PermissionDeniedError) as e:
            await chat(client, "say forbidden things")
        assert e.value.status_code == 403 and e.value.body["code"] == "plugin_refused"
        assert "no forbidden words" in e.value.body["message"]
        async with s.put(url + "/api/v1/plugins/shout/valves", json={"status": 400},
                         headers={"Authorization": "Bearer adm"}) as r:
            assert r.status == 200, await r.text()
        with pytest.raises(openai.BadRequestError) as e:
            await chat(client, "forbidden", stream=True)
        assert e.value.body["code"] == "plugin_refused"
        assert len(script.calls) == 0  # refused before routing
        await client.close()


async def test_filters_on_the_aiohttp_lane_too(tmp_path, aiohttp_server):
    """A chunked request body is not the fast lane's: aiohttp serves it, its own lane
    (web.Response, StreamResponse) wrapped the same way."""
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(text="hello drop world")
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "shout", SHOUT)

    async def chunked(body: dict):  # type: ignore[no-untyped-def]
        yield json.dumps(body).encode()

    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "shout")
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        async with s.post(url + "/v1/chat/completions", data=chunked(body),
                          headers={"Content-Type": "application/json"}) as r:
            assert r.status == 200 and r.headers.get("Transfer-Encoding") != "chunked"
            assert (await r.json())["choices"][0]["message"]["content"] == "HELLO DROP WORLD"
        async with s.post(url + "/v1/chat/completions", data=chunked({**body, "stream": True}),
                          headers={"Content-Type": "application/json"}) as r:
            text = await r.text()
        deltas = [json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                  for line in text.splitlines()
                  if line.startswith("data: {") and '"choices":[{' in line.replace(" ", "")]
        assert "".join(deltas) == "HELLO WORLD" and text.rstrip().endswith("data: [DONE]")
        assert script.calls[-1].last_user == "hi (via anonymous)"
