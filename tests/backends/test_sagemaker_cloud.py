"""SageMaker endpoints (a TGI and an LMI container) behind the cloud role, end to end
with the openai SDK; the fake recomputes SigV4 (signing name sagemaker) with botocore."""

from __future__ import annotations

import openai
import pytest

from tests.backends.aws_kit import CREDS, cloud, leave, streamed
from tests.conftest import until, url_of
from tests.fakes import sagemaker as fake

pytest.importorskip("botocore")


def rows(server, name: str = "sm", priority: int = 0) -> list[dict]:
    return [{"name": name, "type": "sagemaker", "url": url_of(server), "priority": priority,
             "options": {**CREDS, "models": [fake.TGI]}},
            {"name": name + "-lmi", "type": "sagemaker-lmi", "url": url_of(server),
             "priority": priority,
             "options": {**CREDS, "models": [fake.LMI], "inference_component": "ic-1"}}]


async def test_tgi_and_lmi_whole_and_streamed(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake.make_app())
    knobs = server.app[fake.KNOBS]
    async with cloud(tmp_path, *rows(server), models=2) as (client, _):
        assert {m.id async for m in client.models.list()} == {fake.TGI, fake.LMI}
        reply = await client.chat.completions.create(
            model=fake.TGI, max_tokens=30, temperature=0.7,
            messages=[{"role": "system", "content": "brief"}, {"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from SageMaker"
        assert reply.choices[0].finish_reason == "stop"  # TGI's eos_token
        sent = knobs.requests[-1]["body"]
        assert sent["inputs"] == "System: brief\nUser: hi\nAssistant:"
        assert sent["parameters"] == {"details": True, "return_full_text": False,
                                      "max_new_tokens": 30, "temperature": 0.7,
                                      "do_sample": True}
        assert knobs.requests[-1]["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256")
        text, finish = await streamed(await client.chat.completions.create(
            model=fake.TGI, messages=[{"role": "user", "content": "hi"}], stream=True))
        assert (text, finish) == ("Hello from SageMaker", "stop")  # the special </s> left out

        reply = await client.chat.completions.create(
            model=fake.LMI, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from SageMaker"
        assert reply.usage.prompt_tokens == 33
        assert knobs.requests[-1]["headers"]["X-Amzn-SageMaker-Inference-Component"] == "ic-1"
        assert knobs.requests[-1]["body"]["messages"] == [{"role": "user", "content": "hi"}]
        text, finish = await streamed(await client.chat.completions.create(
            model=fake.LMI, messages=[{"role": "user", "content": "hi"}], stream=True))
        assert (text, finish) == ("Hello from SageMaker", "stop")
        assert knobs.requests[-1]["headers"]["X-Amzn-SageMaker-Accept"] == "application/json"


async def test_errors_failover_mid_stream_and_leaving(aiohttp_server, tmp_path):
    a = await aiohttp_server(fake.make_app())
    b = await aiohttp_server(fake.make_app())
    async with cloud(tmp_path, *rows(a, "a"), *rows(b, "b", 1), models=2) as (client, _):
        # the container's 422 (through SageMaker's ModelError 424) is the client's 400
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(
                model=fake.TGI, messages=[{"role": "user", "content": "invalid"}])
        assert bad.value.code == "invalid_request"
        assert bad.value.body["message"] == "Input validation error: `inputs` too long"
        # ServiceUnavailable (503) on the backend tried first: the other answers
        fakes = {"a": a, "b": b}
        raw = await client.chat.completions.with_raw_response.create(
            model=fake.TGI, messages=[{"role": "user", "content": "hi"}])
        tried = raw.headers["X-Eldric-Backend"]
        fakes[tried].app[fake.KNOBS].fail_next.append(503)
        raw = await client.chat.completions.with_raw_response.create(
            model=fake.TGI, messages=[{"role": "user", "content": "hi"}])
        assert fakes[tried].app[fake.KNOBS].fail_next == []
        assert raw.headers["X-Eldric-Backend"] != tried
        # the container's 429 everywhere: tried on both, the cloud's 503
        with pytest.raises(openai.InternalServerError) as down:
            await client.chat.completions.create(
                model=fake.TGI, messages=[{"role": "user", "content": "throttle"}])
        assert down.value.message.count("Model is overloaded") == 2
        # ModelStreamError mid-stream, and a connection cut: one error event each
        for said in ("broken", "cut"):
            with pytest.raises(openai.APIError) as err:
                await streamed(await client.chat.completions.create(
                    model=fake.LMI, messages=[{"role": "user", "content": said}], stream=True))
            assert err.value.code == "upstream_error", said
        # the client leaving: the upstream stream is cancelled
        await leave(await client.chat.completions.create(
            model=fake.TGI, messages=[{"role": "user", "content": "slow"}], stream=True))
        await until(lambda: a.app[fake.KNOBS].cancelled + b.app[fake.KNOBS].cancelled == 1,
                    timeout=10)


async def test_a_stream_failing_at_its_first_event_fails_over(aiohttp_server, tmp_path):
    """InvokeEndpointWithResponseStream answered 200 and its first message is a
    ModelStreamError: nothing reached the client, so the other endpoint answers."""
    a = await aiohttp_server(fake.make_app())
    b = await aiohttp_server(fake.make_app())
    async with cloud(tmp_path, *rows(a, "a"), *rows(b, "b", 1), models=2) as (client, _):
        fakes = {"a": a, "b": b}
        for model in (fake.TGI, fake.LMI):
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": "hi"}])
            tried = raw.headers["X-Eldric-Backend"]
            fakes[tried.split("-")[0]].app[fake.KNOBS].stream_broken = 1
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
            assert fakes[tried.split("-")[0]].app[fake.KNOBS].stream_broken == 0, model
            assert raw.headers["X-Eldric-Backend"] != tried, model
            assert await streamed(raw.parse()) == ("Hello from SageMaker", "stop")


async def test_tools_and_images_refused_by_the_tgi_prompt(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake.make_app())
    async with cloud(tmp_path, *rows(server), models=2) as (client, _):
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(model=fake.TGI, messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {
                    "url": "data:image/png;base64,AAAA"}}]}])
        assert bad.value.status_code == 400
    assert server.app[fake.KNOBS].requests == []
