"""A fake deciding model for AI routing: an OpenAI-compatible /v1/chat/completions that
answers the router's question (a JSON schema response_format naming the candidates) well,
slowly, with garbage, or with an error, as its knobs say. Replies follow the OpenAI chat
completion shape; errors the OpenAI error shape."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web


class Knobs:
    def __init__(self) -> None:
        self.pick: str | None = None  # the worker id to choose; None: the least in flight
        self.reason = "lowest load and a fitting model"
        self.delay = 0.0  # seconds before answering (a slow model)
        self.content: str | None = None  # answer this text instead (garbage)
        self.raw: bytes | None = None  # answer these bytes as the whole body (not a completion)
        self.fail_status: int | None = None
        self.requests: list[dict] = []  # headers and decoded bodies, as they arrived


KNOBS = web.AppKey("decider_knobs", Knobs)


async def chat(request: web.Request) -> web.Response:
    k = request.app[KNOBS]
    body = await request.json()
    k.requests.append({"headers": dict(request.headers), "body": body})
    if k.delay:
        await asyncio.sleep(k.delay)
    if k.fail_status:
        return web.json_response({"error": {"message": "decider failing", "type": "api_error",
                                            "param": None, "code": None}}, status=k.fail_status)
    if k.raw is not None:
        return web.Response(body=k.raw, content_type="application/json")
    content = k.content
    if content is None:
        question = json.loads(body["messages"][-1]["content"])
        workers = question["workers"]
        pick = k.pick or min(workers, key=lambda w: w["in_flight"])["id"]
        content = json.dumps({"worker": pick, "reason": k.reason})
    return web.json_response({
        "id": "chatcmpl-decider", "object": "chat.completion", "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62}})


def make_app() -> web.Application:
    app = web.Application()
    app[KNOBS] = Knobs()
    app.router.add_post("/v1/chat/completions", chat)
    return app
