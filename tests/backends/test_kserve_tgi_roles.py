"""KServe/Triton v2 generate and TGI's native generate end to end: the official openai
SDK against eldric's worker (`--backend kserve|tgi-native`) and cloud role (backends of
those kinds), the fakes (tests/fakes/kserve.py, tgi.py) answering as their documentation
shows.

Whole and streamed chat, the documented request on the wire, usage, a backend error in
the client's shape, 429/503 failover to a second backend, a stream cut mid-way (one
error event, then the end), and the client leaving (the upstream request cancelled)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from tests.backends.fronts import ROLES, client, cloud, fake_starter, front
from tests.fakes import kserve as fake_kserve
from tests.fakes import tgi as fake_tgi

MSGS = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why is the sky blue?"}]
PROMPT = "System: Be brief.\nUser: Why is the sky blue?\nAssistant:"
VLLM_INPUTS = {"exclude_input_in_output": True, "return_finish_reason": True,
               "return_num_input_tokens": True, "return_num_output_tokens": True}


def spec(name: str, kind: str, url: str, **extra) -> dict:
    return {"name": name, "type": kind, "url": url, **extra}


@pytest.fixture
def triton(aiohttp_server):  # type: ignore[no-untyped-def]
    return fake_starter(aiohttp_server, fake_kserve.make_app)


@pytest.fixture
def tgi(aiohttp_server):  # type: ignore[no-untyped-def]
    return fake_starter(aiohttp_server, fake_tgi.make_app)


@ROLES
async def test_kserve_whole_and_streamed_chat(triton, tmp_path, role):
    url, knobs = await triton()
    knobs.api_key = "kserve-token"
    async with front(role, tmp_path, spec("tr", "kserve", url, api_key="kserve-token",
                                    options={"inputs": VLLM_INPUTS})) as urls:
        oai = client(urls)
        assert [m.id for m in (await oai.models.list()).data] == ["llama"]
        r = await oai.chat.completions.create(model="llama", messages=MSGS, max_tokens=3,
                                              temperature=0)
        assert r.choices[0].message.content == "Rayleigh scattering makes"
        assert r.choices[0].finish_reason == "length"
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (len(PROMPT.split()), 3)
        sent = knobs.requests[-1]
        assert sent["path"] == "/v2/models/llama/generate"
        assert sent["body"] == {"text_input": PROMPT, **VLLM_INPUTS,
                                "parameters": {"max_tokens": 3, "temperature": 0}}
        assert sent["headers"]["Authorization"] == "Bearer kserve-token"

        stream = await oai.chat.completions.create(
            model="llama", messages=MSGS, stream=True, stream_options={"include_usage": True})
        pieces, finish, usage = [], None, None
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        assert "".join(pieces) == "Rayleigh scattering makes it blue."
        assert finish == "stop" and usage.completion_tokens == 5
        assert knobs.requests[-1]["path"] == "/v2/models/llama/generate_stream"
        assert knobs.requests[-1]["body"]["parameters"] == {"stream": True}


@ROLES
async def test_kserve_server_kserve_lists_models_and_answers_echoing_the_prompt(triton, tmp_path, role):
    url, knobs = await triton()
    knobs.models = ["gpt2"]
    async with front(role, tmp_path, spec("ks", "kserve", url, options={"server": "kserve"})) as urls:
        oai = client(urls)
        assert [m.id for m in (await oai.models.list()).data] == ["gpt2"]
        r = await oai.chat.completions.create(model="gpt2", messages=MSGS)
        # No exclude_input_in_output: the server repeats the prompt, eldric cuts it off.
        assert r.choices[0].message.content == "Rayleigh scattering makes it blue."
        # The end of a stream without the finish_reason output is the end.
        stream = await oai.chat.completions.create(model="gpt2", messages=MSGS, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Rayleigh scattering makes it blue."


@ROLES
async def test_kserve_backend_error_is_the_clients_error(triton, tmp_path, role):
    url, knobs = await triton()
    async with front(role, tmp_path, spec("tr", "kserve", url, options={"models": ["llama"]})) as urls:
        knobs.models = []  # Triton unloaded it: its 400 {"error": …}
        with pytest.raises(openai.BadRequestError) as e:
            await client(urls).chat.completions.create(model="llama", messages=MSGS)
        assert "unknown model" in e.value.message
        with pytest.raises(openai.BadRequestError) as e:  # refused before anything is sent
            await client(urls).chat.completions.create(model="llama", messages=MSGS,
                                                       stop=["a", "b"])
        assert e.value.body["param"] == "stop"


@pytest.mark.parametrize("status", [429, 503])
async def test_kserve_failover_to_a_second_backend(triton, tmp_path, status):
    (url_a, a), (url_b, b) = await triton(), await triton()
    a.fail_status, a.fail_body = status, b'{"error": "overloaded"}'
    async with cloud(tmp_path, spec("a", "kserve", url_a, priority=1),
                     spec("b", "kserve", url_b, priority=2)) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["url"] + "/v1/chat/completions",
                              json={"model": "llama", "messages": MSGS}) as r:
                assert r.status == 200
                assert r.headers["X-Eldric-Backend"] == "b"
                assert (await r.json())["choices"][0]["message"]["content"]
        assert [q["path"] for q in a.requests if "generate" in q["path"]] == ["/v2/models/llama/generate"]


@ROLES
async def test_kserve_stream_cut_midway_is_one_error_event(triton, tmp_path, role):
    url, knobs = await triton()
    knobs.die_after = 2
    async with front(role, tmp_path, spec("tr", "kserve", url, options={"inputs": VLLM_INPUTS})) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["url"] + "/v1/chat/completions", json={
                    "model": "llama", "messages": MSGS, "stream": True}) as r:
                assert r.status == 200
                body = (await r.read()).decode()
        events = [e[6:] for e in body.split("\n\n") if e.startswith("data: ")]
        content = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                          for e in events if '"choices"' in e)
        assert content == "Rayleigh scattering"
        errors = [json.loads(e) for e in events if e.startswith('{"error"')]
        assert len(errors) == 1 and errors[0]["error"]["code"] == "upstream_error"
        assert "[DONE]" not in events


@ROLES
async def test_kserve_error_event_in_the_stream(triton, tmp_path, role):
    url, knobs = await triton()
    knobs.error_after = 1
    async with front(role, tmp_path, spec("tr", "kserve", url)) as urls:
        stream = await client(urls).chat.completions.create(model="llama", messages=MSGS,
                                                            stream=True)
        got = []
        with pytest.raises(openai.APIError) as e:
            async for c in stream:
                got.append(c.choices[0].delta.content or "")
        assert "".join(got) == "Rayleigh" and "CUDA out of memory" in e.value.message


async def client_leaves(urls, knobs, model: str) -> None:  # type: ignore[no-untyped-def]
    knobs.delay = 0.3
    async with aiohttp.ClientSession() as s:
        async with s.post(urls["url"] + "/v1/chat/completions", json={
                "model": model, "messages": MSGS, "stream": True}) as r:
            assert r.status == 200
            await r.content.readline()  # the first event is here, then the client goes
    await asyncio.wait_for(knobs.disconnected.wait(), 5)


@ROLES
async def test_kserve_client_leaving_cancels_the_upstream_request(triton, tmp_path, role):
    url, knobs = await triton()
    async with front(role, tmp_path, spec("tr", "kserve", url)) as urls:
        await client_leaves(urls, knobs, "llama")


# -- TGI native --------------------------------------------------------------------------

@ROLES
async def test_tgi_whole_and_streamed_chat(tgi, tmp_path, role):
    url, knobs = await tgi()
    async with front(role, tmp_path, spec("old", "tgi-native", url)) as urls:
        oai = client(urls)
        assert [m.id for m in (await oai.models.list()).data] == [fake_tgi.MODEL]
        r = await oai.chat.completions.create(model=fake_tgi.MODEL, messages=MSGS,
                                              temperature=0, top_p=1)
        assert r.choices[0].message.content == "Rayleigh scattering makes it blue."
        assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens == 5
        assert knobs.requests[-1]["body"] == {"inputs": PROMPT, "parameters": {
            "details": True, "do_sample": False}}  # TGI would refuse temperature 0 (422)
        stream = await oai.chat.completions.create(
            model=fake_tgi.MODEL, messages=MSGS, stream=True, max_tokens=2,
            stream_options={"include_usage": True})
        pieces, finish, usage = [], None, None
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            usage = chunk.usage or usage
        assert "".join(pieces) == "Rayleigh scattering" and finish == "length"
        assert (usage.prompt_tokens, usage.completion_tokens) == (len(PROMPT.split()), 2)


@ROLES
@pytest.mark.parametrize("stream", [False, True])
async def test_tgi_validation_error_is_the_clients_400(tgi, tmp_path, role, stream):
    """/generate answers 422; /generate_stream 200 with the error as its first event:
    either way the client gets a 400, not a stream."""
    url, knobs = await tgi()
    knobs.fail_status = 422
    knobs.fail_body = b'{"error":"Input validation error: `inputs` must have less than 1024 ' \
                      b'tokens","error_type":"validation"}'
    async with front(role, tmp_path, spec("old", "tgi-native", url)) as urls:
        with pytest.raises(openai.BadRequestError) as e:
            await client(urls).chat.completions.create(model=fake_tgi.MODEL, messages=MSGS,
                                                       stream=stream)
        assert "less than 1024 tokens" in e.value.message and e.value.code == "validation"


@pytest.mark.parametrize(("status", "body"), [
    (429, b'{"error":"Model is overloaded","error_type":"overloaded"}'),
    (424, b'{"error":"Request failed during generation","error_type":"generation"}')])
async def test_tgi_overloaded_or_failed_generation_fails_over(tgi, tmp_path, status, body):
    (url_a, a), (url_b, _) = await tgi(), await tgi()
    a.fail_status, a.fail_body = status, body
    async with cloud(tmp_path, spec("a", "tgi-native", url_a, priority=1),
                     spec("b", "tgi-native", url_b, priority=2)) as urls:
        stream = await client(urls).chat.completions.with_raw_response.create(
            model=fake_tgi.MODEL, messages=MSGS, stream=True)
        assert stream.headers["X-Eldric-Backend"] == "b"
        text = "".join([c.choices[0].delta.content or "" async for c in stream.parse()
                        if c.choices])
        assert text == "Rayleigh scattering makes it blue."
        assert [q["path"] for q in a.requests] == ["/generate_stream"]


@ROLES
async def test_tgi_stream_cut_and_error_event(tgi, tmp_path, role):
    url, knobs = await tgi()
    async with front(role, tmp_path, spec("old", "tgi-native", url)) as urls:
        oai = client(urls)
        for knob in ("die_after", "error_after"):
            setattr(knobs, knob, 2)
            stream = await oai.chat.completions.create(model=fake_tgi.MODEL, messages=MSGS,
                                                       stream=True)
            got = []
            with pytest.raises(openai.APIError):
                async for c in stream:
                    got.append(c.choices[0].delta.content or "")
            assert "".join(got) == "Rayleigh scattering"
            setattr(knobs, knob, None)


@ROLES
async def test_tgi_client_leaving_cancels_the_upstream_request(tgi, tmp_path, role):
    url, knobs = await tgi()
    async with front(role, tmp_path, spec("old", "tgi-native", url)) as urls:
        await client_leaves(urls, knobs, fake_tgi.MODEL)


TOOLS = [{"type": "function", "function": {
    "name": "add", "description": "Add two numbers",
    "parameters": {"type": "object", "properties": {"a": {"type": "number"},
                                                    "b": {"type": "number"}},
                   "required": ["a", "b"]}}}]
CALL = ['<tool', '_call>\n{"name": "add", ', '"arguments": {"a": 2, "b": 3}}', '\n</tool_call>']


@ROLES
@pytest.mark.parametrize("kind", ["kserve", "tgi-native"])
async def test_tools_through_the_xml_emulation(triton, tgi, tmp_path, role, kind):
    """These kinds have no native tool calls (tools="xml" in their rows): the tools go
    into the prompt, the model's <tool_call> block comes back as tool_calls, whole and
    streamed, and the tool's result goes back as a <tool_response>."""
    url, knobs = await (triton() if kind == "kserve" else tgi())
    model = "llama" if kind == "kserve" else fake_tgi.MODEL
    ask = [{"role": "user", "content": "What is 2 + 3?"}]
    async with front(role, tmp_path, spec("b", kind, url)) as urls:
        oai = client(urls)
        knobs.words = CALL
        r = await oai.chat.completions.create(model=model, messages=ask, tools=TOOLS)
        prompt = (knobs.requests[-1]["body"].get("text_input")
                  or knobs.requests[-1]["body"].get("inputs"))
        assert "<tools>" in prompt and '"name": "add"' in prompt
        assert "tools" not in knobs.requests[-1]["body"]
        (call,) = r.choices[0].message.tool_calls
        assert r.choices[0].finish_reason == "tool_calls"
        assert (call.function.name, json.loads(call.function.arguments)) == ("add", {"a": 2, "b": 3})

        stream = await oai.chat.completions.create(model=model, messages=ask, tools=TOOLS,
                                                   stream=True)
        chunks = [c async for c in stream]
        deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
        assert deltas[0].function.name == "add"
        assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"a": 2, "b": 3}
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"

        knobs.words = ["5"]
        back = ask + [{"role": "assistant", "content": None, "tool_calls": [{
            "id": call.id, "type": "function",
            "function": {"name": "add", "arguments": call.function.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "5"}]
        r = await oai.chat.completions.create(model=model, messages=back, tools=TOOLS)
        assert r.choices[0].message.content == "5"
        prompt = (knobs.requests[-1]["body"].get("text_input")
                  or knobs.requests[-1]["body"].get("inputs"))
        assert "<tool_response>" in prompt and "<tool_call>" in prompt


@ROLES
async def test_an_image_is_a_clear_400_not_a_silent_drop(tgi, tmp_path, role):
    url, knobs = await tgi()
    async with front(role, tmp_path, spec("b", "tgi-native", url)) as urls:
        with pytest.raises(openai.BadRequestError) as e:
            await client(urls).chat.completions.create(model=fake_tgi.MODEL, messages=[
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in it?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
        assert e.value.code == "vision_unsupported"
        assert not [q for q in knobs.requests if q["path"].startswith("/generate")]
