"""Helpers of the swarm's flow tests: a router in front of scripted backends, and the
ways a test asks it (whole, streamed as raw SSE)."""

from __future__ import annotations

import json
import time

import aiohttp

from tests.conftest import run_eldric

Q = [{"role": "user", "content": "What is the capital of France?"}]


def router(tmp_path, *urls, **flags):  # type: ignore[no-untyped-def]
    return run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=",".join(urls),
                      health_interval=60_000, **flags)


async def ask(base: str, model: str, messages=Q, headers=None, **extra):  # type: ignore[no-untyped-def]
    """(status, headers, JSON body) of a whole swarm reply."""
    async with aiohttp.ClientSession() as s:
        async with s.post(base + "/v1/chat/completions", headers=headers or {},
                          json={"model": model, "messages": messages, **extra}) as r:
            return r.status, r.headers.copy(), await r.json(content_type=None)


class Sse:
    """A streamed reply as it arrived: comments, data events, and when each came."""

    def __init__(self) -> None:
        self.status = 0
        self.comments: list[dict] = []
        self.data: list[dict | str] = []
        self.times: list[float] = []  # time.monotonic() of each data event
        self.text = ""

    @property
    def content(self) -> str:
        return "".join(d["choices"][0]["delta"].get("content") or "" for d in self.data
                       if isinstance(d, dict) and d.get("choices"))

    @property
    def last(self) -> dict:
        return [d for d in self.data if isinstance(d, dict)][-1]


async def stream(base: str, model: str, messages=Q, **extra) -> Sse:  # type: ignore[no-untyped-def]
    out = Sse()
    async with aiohttp.ClientSession() as s:
        async with s.post(base + "/v1/chat/completions",
                          json={"model": model, "messages": messages, "stream": True,
                                **extra}) as r:
            out.status = r.status
            buf = b""
            async for chunk in r.content.iter_any():
                buf += chunk
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    feed(out, event.decode())
    return out


def feed(out: Sse, event: str) -> None:
    out.text += event + "\n\n"
    if event.startswith(": eldric.swarm "):
        out.comments.append(json.loads(event[len(": eldric.swarm "):]))
    elif event.startswith("data: "):
        payload = event[6:]
        out.data.append(payload if payload == "[DONE]" else json.loads(payload))
        out.times.append(time.monotonic())
