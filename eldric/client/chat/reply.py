"""One streamed chat reply: POST /v1/chat/completions with stream=true, its text as the
SSE events bring it, and the timings shown after it (time to the first token, tokens/s).

Stopping (Ctrl-C) cancels the task reading the stream; leaving `http.lines()` closes
the connection, which is how every eldric hop (and any OpenAI-compatible server) learns
to stop generating.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from eldric.client.http import ApiError, lines

SWARM_HEADER = "X-Eldric-Swarm"


class StreamError(ApiError):
    """An error event inside a reply that had already begun (its status was 200)."""

    def line(self) -> str:
        return f"error: in the reply: {self.code}: {self.message}"


class Reply:
    """The text so far and when its pieces came; `tokens` is the server's count
    (usage.completion_tokens) when it gives one, else the content pieces received."""

    def __init__(self) -> None:
        self.text = ""
        self.model = ""
        self.started = time.monotonic()
        self.first: float | None = None
        self.last: float | None = None
        self.pieces = 0
        self.usage_tokens: int | None = None
        self.finished = False  # a finish_reason came: the reply is whole

    @property
    def tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else self.pieces

    def stats(self) -> str:
        """`12 tokens · 48.2 tok/s · TTFT 130 ms` (or what is known of it)."""
        if self.first is None:
            return "no tokens"
        ttft_ms = (self.first - self.started) * 1000
        span = (self.last or self.first) - self.first
        # the first token's own time is TTFT; the rate is over the tokens after it
        rate = "- tok/s"
        if span > 0 and self.tokens > 1:
            rate = f"{(self.tokens - 1) / span:.1f} tok/s"
        return f"{self.tokens} tokens · {rate} · TTFT {ttft_ms:.0f} ms"

    def take(self, event: dict[str, Any]) -> str:
        """One SSE event's JSON: the content it adds ('' for none)."""
        if event.get("error") is not None:
            err = event["error"]
            if isinstance(err, dict):
                raise StreamError(200, str(err.get("code") or err.get("type") or "error"),
                                  str(err.get("message") or ""))
            raise StreamError(200, "error", str(err))
        self.model = event.get("model") or self.model
        usage = event.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage_tokens = usage["completion_tokens"]
        piece = ""
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            piece += delta.get("content") or ""
            self.finished = self.finished or bool(choice.get("finish_reason"))
        if piece:
            now = time.monotonic()
            self.first = self.first or now
            self.last = now
            self.pieces += 1
            self.text += piece
        return piece


async def stream(session: aiohttp.ClientSession, url: str, *, key: str | None,
                 model: str | None, messages: list[dict[str, str]], swarm: str | None,
                 reply: Reply, on_text: Callable[[str], None]) -> Reply:
    """Stream one reply into `reply`, calling on_text with each piece as it arrives."""
    body: dict[str, Any] = {"messages": messages, "stream": True,
                            "stream_options": {"include_usage": True}}
    if model:
        body["model"] = model
    extra = {SWARM_HEADER: swarm} if swarm else None
    began = False
    try:
        async for raw in lines(session, "POST", url + "/v1/chat/completions", key=key,
                               body=body, extra_headers=extra):
            began = True
            if _event(raw, reply, on_text):
                return reply
    except ApiError as exc:
        if exc.status == 0 and began:  # not "cannot reach": it answered, then broke
            raise StreamError(200, "incomplete",
                              f"the connection broke mid-reply ({exc.message})") from None
        raise
    if not reply.finished:  # the connection ended mid-reply: what came is not all of it
        raise StreamError(200, "incomplete", "the stream ended before the reply did")
    return reply


def _event(raw: bytes, reply: Reply, on_text: Callable[[str], None]) -> bool:
    """Take one SSE line into `reply`; True at `[DONE]`."""
    line = raw.strip()
    if not line.startswith(b"data:"):
        return False  # blank separators, `: comment` keep-alives and swarm progress
    data = line[5:].strip()
    if data == b"[DONE]":
        return True
    try:
        event = json.loads(data)
    except ValueError:
        raise StreamError(200, "bad_event", f"not JSON: {data[:80]!r}") from None
    if isinstance(event, dict):
        piece = reply.take(event)
        if piece:
            on_text(piece)
    return False
