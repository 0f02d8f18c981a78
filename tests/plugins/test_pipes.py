"""Pipes end to end: the shipped `echo-upper` pipe (a real child process) is a virtual
model in the edge's /v1/models beside the cluster's; asked through the openai SDK it asks
a cluster model through the edge, with the key the edge gave it, and answers in
capitals: whole, or streamed as OpenAI chunks as the cluster's tokens come. A pipe that
fails is a 502 `plugin_failed` naming it."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from tests.conftest import metric
from tests.fakes import scripted
from tests.plugins.kit import AUTH, edge, plugins_dir, router

KEY = "sk-pipe-test"
ASK = [{"role": "user", "content": "say hello"}]


async def test_echo_upper_is_listed_and_answers_whole_and_streamed(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    script.on(model="m-a", text="hello from the cluster", delay=0.01)
    plugins = plugins_dir(tmp_path, "echo-upper")
    async with router(tmp_path, script.url) as r, \
            edge(tmp_path, r["router"], plugins, api_key=KEY) as e:
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        listed = {m.id: m async for m in client.models.list()}
        assert {"m-a", "echo-upper"} <= set(listed)
        assert listed["echo-upper"].owned_by == "plugin:echo-upper"
        one = await client.models.retrieve("echo-upper")
        assert one.id == "echo-upper" and one.owned_by == "plugin:echo-upper"

        reply = await client.chat.completions.create(model="echo-upper", messages=ASK)
        assert reply.choices[0].message.content == "HELLO FROM THE CLUSTER"
        assert reply.model == "echo-upper" and reply.choices[0].finish_reason == "stop"

        pieces, finish = [], None
        async for chunk in await client.chat.completions.create(
                model="echo-upper", messages=ASK, stream=True):
            assert chunk.object == "chat.completion.chunk" and chunk.model == "echo-upper"
            if chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            finish = chunk.choices[0].finish_reason or finish
        assert "".join(pieces) == "HELLO FROM THE CLUSTER" and len(pieces) > 1
        assert finish == "stop"
        # the pipe came in with its own key, as client plugin:echo-upper (per answer: the
        # model list, to pick a model, and the chat); the client's requests counted as
        # its own (a listing, a retrieve, two chats)
        assert await metric(e["edge"], 'eldric_edge_client_requests_total{client="plugin:echo-upper"}',
                            ssl=False) == 4
        assert await metric(e["edge"], 'eldric_edge_client_requests_total{client="key-1"}',
                            ssl=False) == 4
        with pytest.raises(openai.NotFoundError):  # not virtual: the routers' answer
            await client.models.retrieve("no-such-model")
        await client.close()
    asked = script.asked("m-a")
    assert len(asked) == 2 and all(c.last_user == "say hello" for c in asked)


async def test_a_failing_pipe_is_a_502_naming_it_and_the_cluster_still_answers(
        tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    own = {"broken": ({"type": "pipe", "timeout_ms": 3000}, (
        "from eldric import plugin\n"
        "@plugin.pipe(id='broken-model')\n"
        "def answer(body, user):\n"
        "    raise RuntimeError('no luck')\n"
        "plugin.run()\n"))}
    plugins = plugins_dir(tmp_path, own=own)
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        async with aiohttp.ClientSession() as s:
            for stream in (False, True):
                async with s.post(e["edge"] + "/v1/chat/completions", headers=AUTH, json={
                        "model": "broken-model", "messages": ASK, "stream": stream}) as resp:
                    body = await resp.json()
                    assert resp.status == 502, body
                    assert body["error"]["code"] == "plugin_failed"
                    assert "broken" in body["error"]["message"]
            async with s.post(e["edge"] + "/v1/chat/completions", headers=AUTH,
                              json={"model": "m-a", "messages": ASK}) as resp:
                assert resp.status == 200


async def test_a_pipe_that_returns_its_text_streams_it_as_one_chunk(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    own = {"plain": ({"type": "pipe"}, (
        "from eldric import plugin\n"
        "@plugin.pipe(id='plain-model', name='Plain')\n"
        "def answer(body, user):\n"
        "    return 'you are ' + user['name'] + ', said ' + body['messages'][-1]['content']\n"
        "plugin.run()\n"))}
    plugins = plugins_dir(tmp_path, own=own)
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        async with aiohttp.ClientSession() as s:
            async with s.post(e["edge"] + "/v1/chat/completions", headers=AUTH, json={
                    "model": "plain-model", "messages": ASK, "stream": True}) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                events = [json.loads(line[6:]) for line in (await resp.text()).split("\n\n")
                          if line.startswith("data: {")]
                assert (await resp.text()).rstrip().endswith("data: [DONE]")
    deltas = [ev["choices"][0]["delta"] for ev in events]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas[1:-1]] == ["you are key-1, said say hello"]
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert not script.calls  # the cluster was not asked
