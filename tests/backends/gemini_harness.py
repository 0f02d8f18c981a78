"""What the Gemini and Vertex end-to-end tests share: a cloud role from a config file
(a native kind's `options` need one), SSE read raw, the tools offered."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator

import aiohttp
import openai

from eldric import registry
from eldric.cli import load_config
from tests.conftest import serving, until

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather in a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}]


@contextlib.asynccontextmanager
async def cloud(tmp_path, backends: list[dict]) -> AsyncIterator[str]:
    """A cloud role with these backends (config-file entries): its URL."""
    path = tmp_path / "cloud.json"
    path.write_text(json.dumps({"cloud": {"backends": backends}}))
    roles = registry.resolve("cloud")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    loaded = load_config(roles, {"port": 0, "bind": "127.0.0.1",
                                 "data_dir": str(tmp_path / "data")}, env, str(path))
    async with serving(roles, loaded) as urls:
        yield urls["cloud"]


async def sse_events(url: str, body: dict) -> tuple[int, list]:
    """A streamed POST read raw: its status and its data events (JSON, or "[DONE]")."""
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        raw = await r.read()
        if r.status != 200:
            return r.status, [json.loads(raw)]
    events = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
    return 200, events


async def leave_mid_stream(client: openai.AsyncOpenAI, model: str, knobs) -> None:  # type: ignore[no-untyped-def]
    """Start the fake's slow stream, take its first chunk, leave: the fake must see its
    reply cancelled (its client, eldric, closed the upstream request)."""
    stream = await client.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": "slow"}])
    async for chunk in stream:
        assert chunk.choices[0].delta.content
        break
    await stream.close()
    await until(lambda: knobs.cancelled == 1, timeout=10)
