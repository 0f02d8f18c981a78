"""XML tool emulation through the roles, with the openai SDK: a worker in front of an
OpenAI-compatible backend with --xml-tools-models, and a cloud backend with
options.xml_tools. The fake backend answers as a model without native tools would: it
checks that no `tools` field reached it and that the tools are in the system prompt,
and writes a <tool_call> block as text, streamed split across chunks."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
from aiohttp import web

from tests.conftest import free_port, run_eldric, url_of
from tests.fakes.openai_server import KNOBS, MODELS
from tests.real_model import ready

CALC = {"type": "function", "function": {"name": "calculate", "description": "math",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}}
REPLY = 'Let me see. <tool_call>\n{"name": "calculate", "arguments": {"expression": "6*7"}}\n</tool_call>'


def fake_backend(seen: list) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body)
        assert "tools" not in body and "tool_choice" not in body
        assert "<tools>" in body["messages"][0]["content"]
        base = {"id": "chatcmpl-f", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            return web.json_response({**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": REPLY},
                 "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        pieces = [{"role": "assistant", "content": ""}] + [
            {"content": REPLY[i:i + 7]} for i in range(0, len(REPLY), 7)]
        for d in pieces:
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        end = {**base, "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await resp.write(b"data: " + json.dumps(end).encode() + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {**base, "object": "chat.completion.chunk", "choices": [],
                     "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}}
            await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m-small", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


async def _check(url: str) -> None:
    c = openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    ask = [{"role": "user", "content": "6*7?"}]
    r = await c.chat.completions.create(model="m-small", messages=ask, tools=[CALC])
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.content == "Let me see. "
    (call,) = r.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "calculate", {"expression": "6*7"})
    text, args, finish = "", "", None
    async for chunk in await c.chat.completions.create(model="m-small", messages=ask,
                                                        tools=[CALC], stream=True):
        assert chunk.choices and chunk.usage is None  # no usage chunk: not asked for
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            for tc in chunk.choices[0].delta.tool_calls or []:
                args += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
    assert (text, json.loads(args), finish) == ("Let me see. ", {"expression": "6*7"}, "tool_calls")
    await c.close()


async def test_worker_emulates_the_models_its_setting_names(aiohttp_server, tmp_path):
    seen: list = []
    server = await aiohttp_server(fake_backend(seen))
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="vllm",
                          backend_url=url_of(server), xml_tools_models="m-*") as w:
        await ready(w["worker"])
        await _check(w["worker"])
    assert len(seen) == 2


async def test_cloud_emulates_by_backend_options(aiohttp_server, tmp_path):
    seen: list = []
    server = await aiohttp_server(fake_backend(seen))
    async with run_eldric("cloud", tmp_path, port=0, bind="127.0.0.1", backends=json.dumps([
            {"name": "small", "type": "openai_compatible", "url": url_of(server) + "/v1",
             "options": {"xml_tools": ["m-*"]}}])) as cl:
        await ready(cl["cloud"])
        await _check(cl["cloud"])
        async with aiohttp.ClientSession() as s:
            async with s.get(cl["cloud"] + "/metrics") as r:
                text = await r.text()
    assert len(seen) == 2
    assert seen[1]["stream_options"] == {"include_usage": True}  # asked, to count tokens
    # both replies counted: the whole one's usage and the stream's usage chunk
    assert 'eldric_cloud_tokens_total{backend="small",kind="completion",model="m-small"} 40.0' in text


# ---------------------------------------------------------------- failure paths, emulated

EMULATED = {"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}],
            "tools": [CALC]}


def _worker(tmp_path, url: str):  # type: ignore[no-untyped-def]
    return run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="vllm",
                      backend_url=url, xml_tools_models="*")


async def test_emulated_bad_body_is_a_400_naming_the_parameter(fake_openai_server, tmp_path):
    async with _worker(tmp_path, url_of(fake_openai_server)) as w:
        async with aiohttp.ClientSession() as s:
            async with s.post(w["worker"] + "/v1/chat/completions",
                              json={**EMULATED, "tools": "calculate"}) as r:
                assert r.status == 400
                err = (await r.json())["error"]
    assert err["param"] == "tools" and err["type"] == "invalid_request_error"


async def test_emulated_backend_down_is_a_503(tmp_path):
    async with _worker(tmp_path, f"http://127.0.0.1:{free_port()}") as w:
        async with aiohttp.ClientSession() as s:
            async with s.post(w["worker"] + "/v1/chat/completions", json=EMULATED) as r:
                assert r.status == 503
                assert (await r.json())["error"]["code"] == "upstream_unavailable"


async def test_emulated_stream_cut_ends_with_one_error_event(fake_openai_server, tmp_path):
    fake_openai_server.app[KNOBS].die_after = 2
    async with _worker(tmp_path, url_of(fake_openai_server)) as w:
        async with aiohttp.ClientSession() as s:
            async with s.post(w["worker"] + "/v1/chat/completions",
                              json={**EMULATED, "stream": True}) as r:
                assert r.status == 200
                raw = await r.read()  # ends cleanly: no exception, no hang
    events = [json.loads(e[6:]) for e in raw.decode().split("\n\n") if e]
    assert sum("error" in e for e in events) == 1 and "error" in events[-1]
    assert any(e.get("choices") and e["choices"][0]["delta"].get("content") for e in events)


async def test_emulated_client_leaving_cancels_the_backend(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[KNOBS]
    knobs.tokens, knobs.delay = 200, 0.05
    async with _worker(tmp_path, url_of(fake_openai_server)) as w:
        s = aiohttp.ClientSession()
        r = await s.post(w["worker"] + "/v1/chat/completions", json={**EMULATED, "stream": True})
        await r.content.readuntil(b"w1")  # a couple of tokens arrived, through the scanner
        r.close()
        await s.close()
        await asyncio.wait_for(knobs.disconnected.wait(), 1.0)
