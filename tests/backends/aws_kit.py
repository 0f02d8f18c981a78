"""What the AWS backends' role tests share: a cloud role over given backend rows, the
openai SDK pointed at it, and the fakes' credentials."""

from __future__ import annotations

import contextlib

import openai

from eldric import registry
from tests.conftest import run_role, until
from tests.fakes import aws_sigv4

CREDS = {"region": "us-east-1", "access_key_id": aws_sigv4.ACCESS_KEY,
         "secret_access_key": aws_sigv4.SECRET_KEY}


async def _listed(client: openai.AsyncOpenAI, want: int) -> bool:
    return len([m async for m in client.models.list()]) >= want


@contextlib.asynccontextmanager
async def cloud(tmp_path, *rows, models: int = 1):  # type: ignore[no-untyped-def]
    """The cloud role with these backend rows, once it lists `models` models."""
    [role] = registry.resolve("cloud")
    async with run_role(role, tmp_path, backends=list(rows)) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        await until(lambda: _listed(client, models), timeout=10)
        yield client, url
        await client.close()


async def streamed(stream) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    """A streamed chat's text and finish reason."""
    text, finish = "", None
    async for chunk in stream:
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, finish


async def leave(stream, after: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Read `after` chunks of a stream, then go away (the client leaving)."""
    n = 0
    async for _ in stream:
        n += 1
        if n == after:
            break
    await stream.close()
