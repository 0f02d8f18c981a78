"""Bedrock and SageMaker behind the worker role (--backend bedrock|sagemaker|sagemaker-lmi
--backend-options '{…}'), end to end with the openai SDK; the fakes recompute SigV4."""

from __future__ import annotations

import contextlib
import json

import openai
import pytest

from eldric.roles import worker as worker_role
from tests.backends.aws_kit import CREDS, leave, streamed
from tests.conftest import run_role, until, url_of
from tests.fakes import bedrock, sagemaker

pytest.importorskip("botocore")

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@contextlib.asynccontextmanager
async def worker(tmp_path, kind: str, server, **options):  # type: ignore[no-untyped-def]
    async with run_role(worker_role.ROLE, tmp_path, backend=kind, backend_url=url_of(server),
                        backend_options={**CREDS, **options}) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)

        async def listed() -> bool:
            return bool([m async for m in client.models.list()])
        await until(listed, timeout=10)
        yield client
        await client.close()


async def test_bedrock_through_the_worker(aiohttp_server, tmp_path):
    server = await aiohttp_server(bedrock.make_app())
    knobs = server.app[bedrock.KNOBS]
    async with worker(tmp_path, "bedrock", server) as client:
        assert [m.id async for m in client.models.list()] == [bedrock.MODEL]
        reply = await client.chat.completions.create(
            model=bedrock.MODEL, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from Bedrock."
        assert reply.usage.total_tokens == 19
        text, finish = await streamed(await client.chat.completions.create(
            model=bedrock.MODEL, messages=[{"role": "user", "content": "hi"}], stream=True))
        assert (text, finish) == ("Hello from Bedrock.", "stop")
        reply = await client.chat.completions.create(
            model=bedrock.MODEL, messages=[{"role": "user", "content": "tools"}], tools=TOOLS)
        [call] = reply.choices[0].message.tool_calls
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "get_weather", {"city": "Paris"})
        assert reply.choices[0].finish_reason == "tool_calls"
        # Bedrock's ThrottlingException: the worker has no other backend, the mapped 429
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(
                model=bedrock.MODEL, messages=[{"role": "user", "content": "throttle"}])
        assert limited.value.code == "rate_limit_exceeded"
        with pytest.raises(openai.APIError) as err:
            await streamed(await client.chat.completions.create(
                model=bedrock.MODEL, messages=[{"role": "user", "content": "exception"}],
                stream=True))
        assert err.value.code == "rate_limit_exceeded"
        await leave(await client.chat.completions.create(
            model=bedrock.MODEL, messages=[{"role": "user", "content": "slow"}], stream=True))
        await until(lambda: knobs.cancelled == 1, timeout=10)
        assert all(r["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256")
                   for r in knobs.requests)


@pytest.mark.parametrize("kind", ["sagemaker", "sagemaker-lmi"])
async def test_sagemaker_through_the_worker(kind, aiohttp_server, tmp_path):
    server = await aiohttp_server(sagemaker.make_app())
    endpoint = sagemaker.TGI if kind == "sagemaker" else sagemaker.LMI
    async with worker(tmp_path, kind, server, models=[endpoint]) as client:
        reply = await client.chat.completions.create(
            model=endpoint, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from SageMaker"
        text, finish = await streamed(await client.chat.completions.create(
            model=endpoint, messages=[{"role": "user", "content": "hi"}], stream=True))
        assert (text, finish) == ("Hello from SageMaker", "stop")
        with pytest.raises(openai.InternalServerError) as busy:
            await client.chat.completions.create(
                model=endpoint, messages=[{"role": "user", "content": "busy"}])
        assert busy.value.status_code == 503 and busy.value.code == "upstream_overloaded"
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(
                model=endpoint, messages=[{"role": "user", "content": "throttle"}])
