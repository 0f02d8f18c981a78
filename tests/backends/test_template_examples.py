"""The template adapter end to end: each worked example of docs/backends.md, pointed at
a fake of its server (tests/fakes/predict.py), driven through the cloud role with the
official openai SDK — whole and streamed (the server streams nothing: the whole reply
as one chunk), the server's error in the client's shape, failover, and a template that
cannot work."""

from __future__ import annotations

import json

import openai
import pytest

from eldric.errors import ConfigError
from tests.backends.test_template_wire import examples
from tests.backends.fronts import client as front_client
from tests.backends.fronts import fake_starter, front
from tests.conftest import run_cloud
from tests.fakes import predict

MSGS = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why is the sky blue?"}]
LOCAL = ("torchserve", "tf-serving", "mlserver", "azure-ml-score")


@pytest.fixture
def server(aiohttp_server):  # type: ignore[no-untyped-def]
    return fake_starter(aiohttp_server, predict.make_app)


def pointed(example: str, url: str, **extra) -> dict:
    """The docs' example with its URL (and key) pointed at the fake."""
    return {**examples()[example], "url": url, **extra}


def models_of(ex: dict) -> list[str]:
    return ex["options"]["models"]


def client(urls) -> openai.AsyncOpenAI:  # type: ignore[no-untyped-def]
    return openai.AsyncOpenAI(base_url=urls["cloud"] + "/v1", api_key="unused", max_retries=0)


async def test_every_worked_example_through_the_cloud_role(server, tmp_path):
    url, knobs = await server()
    knobs.api_key = "k"
    knobs.models = ["llama", "gpt2"]
    specs = [pointed(n, url, api_key="k", name=n) for n in LOCAL]
    async with run_cloud(tmp_path, json.dumps(specs)) as urls:
        oai = client(urls)
        listed = {m.id for m in (await oai.models.list()).data}
        assert listed == {m for n in LOCAL for m in models_of(examples()[n])}
        for name in LOCAL:
            model = models_of(examples()[name])[0]
            r = await oai.chat.completions.with_raw_response.create(
                model=model, messages=MSGS, max_tokens=20, temperature=0.5)
            assert r.headers["X-Eldric-Backend"] == name
            reply = r.parse()
            assert reply.choices[0].message.content.strip() == predict.TEXT, name
            assert knobs.requests[-1]["headers"]["Authorization"] == "Bearer k"
            stream = await oai.chat.completions.create(model=model, messages=MSGS, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream
                            if c.choices])
            assert text.strip() == predict.TEXT, name
        first = {}
        for q in knobs.requests:
            first.setdefault(q["path"], q["body"])
        assert first["/predictions/llama"]["max_new_tokens"] == 20
        assert first["/predictions/llama"]["temperature"] == 0.5
        assert first["/score"]["input_data"]["input_string"][0] == MSGS[0]
        assert first["/score"]["input_data"]["parameters"] == {"max_new_tokens": 20,
                                                               "temperature": 0.5}


async def test_server_errors_are_the_clients_and_5xx_fail_over(server, tmp_path):
    (url_a, a), (url_b, _) = await server(), await server()
    a.models = []  # TorchServe's 404 ModelNotFoundException
    async with run_cloud(tmp_path, json.dumps([
            pointed("torchserve", url_a, name="a", priority=1)])) as urls:
        with pytest.raises(openai.NotFoundError) as e:
            await client(urls).chat.completions.create(model="llama", messages=MSGS)
        assert "Model not found: llama" in e.value.message
    a.models, a.fail_status, a.fail_body = ["llama"], 503, b'{"code": 503, "message": "busy"}'
    async with run_cloud(tmp_path, json.dumps([
            pointed("torchserve", url_a, name="a", priority=1),
            pointed("torchserve", url_b, name="b", priority=2)])) as urls:
        r = await client(urls).chat.completions.with_raw_response.create(
            model="llama", messages=MSGS)
        assert r.headers["X-Eldric-Backend"] == "b"


@pytest.mark.parametrize("role", ["cloud", "worker"])
@pytest.mark.parametrize(("change", "named"), [
    ({"request": {"prompt": "{{promt}}"}}, "{{promt}}"),
    ({"headers": "azureml-model-deployment: blue"}, "option headers"),
    ({"usage": {"prompt_tokens": 3}}, "option usage"),
    ({"stream": {"path": 7, "text": "token.text"}}, "option stream.path")])
async def test_a_template_that_cannot_work_fails_at_start_up(server, tmp_path, role, change,
                                                             named):
    """The operator's mistake is found when the backend is configured (exit 2 with the
    option named), not as a 500 (or a traceback) at each request."""
    from eldric.errors import ConfigError

    url, _ = await server()
    bad = pointed("torchserve", url)
    bad["options"] = {**bad["options"], **change}
    with pytest.raises(ConfigError) as e:
        async with front(role, tmp_path, bad):
            pass
    assert named in str(e.value)


@pytest.mark.parametrize("name", LOCAL)
async def test_every_worked_example_through_the_worker(server, tmp_path, name):
    """`eldric --role worker --backend template --backend-url URL --backend-options '…'`
    with the example's options: its `models` served, chat whole and streamed."""
    url, knobs = await server()
    knobs.models = ["llama", "gpt2"]
    ex = pointed(name, url)
    async with front("worker", tmp_path, {**ex, "api_key": "k"}) as urls:
        oai = front_client(urls)
        assert [m.id for m in (await oai.models.list()).data] == models_of(ex)
        model = models_of(ex)[0]
        r = await oai.chat.completions.create(model=model, messages=MSGS, max_tokens=20)
        assert r.choices[0].message.content.strip() == predict.TEXT
        assert knobs.requests[-1]["headers"]["Authorization"] == "Bearer k"
        stream = await oai.chat.completions.create(model=model, messages=MSGS, stream=True)
        chunks = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks
                       if c.choices).strip() == predict.TEXT
        assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("role", ["worker", "cloud"])
async def test_a_streaming_template_server(server, tmp_path, role):
    """The docs' custom-stream example: SSE token events and [DONE] become chunk events;
    a stream cut before [DONE] ends in one error event; an error before any token is
    the error reply (failover on 5xx)."""
    url, knobs = await server()
    async with front(role, tmp_path, pointed("custom-stream", url)) as urls:
        oai = front_client(urls)
        stream = await oai.chat.completions.create(model="lcm", messages=MSGS, stream=True,
                                                   max_tokens=7)
        chunks = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) \
            == "".join(knobs.words)
        assert knobs.requests[-1]["path"] == "/generate_stream"
        assert knobs.requests[-1]["body"] == {"text": "Why is the sky blue?", "max_len": 7}
        r = await oai.chat.completions.create(model="lcm", messages=MSGS)
        assert r.choices[0].message.content == predict.TEXT
        knobs.die_after = 2
        stream = await oai.chat.completions.create(model="lcm", messages=MSGS, stream=True)
        got = []
        with pytest.raises(openai.APIError):
            async for c in stream:
                got.append(c.choices[0].delta.content or "")
        assert "".join(got) == "".join(knobs.words[:2])
