"""A scripted OpenAI-compatible backend: which answer each call gets is written by the test.

For the swarm's flow tests: several models behind one server (or several servers), each
call's reply chosen by the first matching rule — by model, by a substring of the
prompt, by the call's index among that model's calls — with delays, errors, a hang (a
member that times out), garbage, tool calls and token-by-token streaming. Every call is
recorded: who was asked what, in which order, when its first byte went out, how it
ended, and whether the client went away before the end.

Shapes are the OpenAI API's (as tests/fakes/openai_server.py): `GET /v1/models`,
`POST /v1/chat/completions` plain or SSE (a role chunk, one chunk per token, a finish
chunk, the usage chunk when `stream_options.include_usage`, `[DONE]`; tool calls streamed
id and name first, then the arguments in pieces), errors as `{"error": {"message",
"type", "param", "code"}}`. `/health` answers 404, as a plain OpenAI-compatible server
does: the router then lists the models from `/v1/models`.

    script = await scripted.serve(aiohttp_server, ["m-a", "m-b"])
    script.on(model="m-a", text="Paris")
    script.on(model="m-b", contains="critique", hold=0.2, text="Too short.")
    script.on(model="m-b", call=1, status=500)
    ... requests ...
    assert script.order() == ["m-a", "m-b"]
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    """What one call gets. `text` is sent as tokens: words with their leading space."""
    text: str | None = None  # None: "<model> answer <n>" (n: the call's index for its model)
    hold: float = 0.0  # seconds before anything is sent (a slow prompt read)
    delay: float = 0.0  # seconds per token: before each streamed one, all of them at once
    # before a whole reply (a backend takes as long to generate either way)
    status: int | None = None  # an error reply with this status
    message: str = "scripted failure"  # ... and this error message
    hang: bool = False  # never answer: the caller's timeout must end it
    raw: bytes | None = None  # a 200 whose body is this (not a chat completion at all)
    tool_calls: list[tuple[str, str, str]] | None = None  # (id, name, arguments JSON)
    die_after: int | None = None  # the connection breaks after this many streamed tokens
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"


@dataclass
class Rule:
    model: str | None
    contains: str | None
    call: int | None
    reply: Reply

    def matches(self, model: str, prompt: str, index: int) -> bool:
        return ((self.model is None or self.model == model)
                and (self.contains is None or self.contains in prompt)
                and (self.call is None or self.call == index))


@dataclass
class Call:
    """One call as the backend saw it."""
    seq: int  # its place among every call this server got
    index: int  # its place among the calls for its model
    model: str
    messages: list[dict]
    body: dict
    headers: dict[str, str]
    started: float  # time.monotonic()
    first_byte: float | None = None
    ended: float | None = None
    outcome: str = "running"  # ok | error | garbage | died | cancelled | running
    reply: Reply | None = None

    @property
    def prompt(self) -> str:
        return prompt_text(self.messages)

    @property
    def system(self) -> str:
        return "\n".join(_text(m.get("content")) for m in self.messages
                         if m.get("role") == "system")

    @property
    def last_user(self) -> str:
        users = [m for m in self.messages if m.get("role") == "user"]
        return _text(users[-1].get("content")) if users else ""

    @property
    def left(self) -> bool:
        """The client went away before the reply was over."""
        return self.outcome == "cancelled"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def prompt_text(messages: list[dict]) -> str:
    """Every message's text, one per line: what `contains=` is looked for in."""
    return "\n".join(_text(m.get("content")) for m in messages if isinstance(m, dict))


def tokens_of(text: str) -> list[str]:
    """Words with their leading whitespace: joined again they are the text."""
    return re.findall(r"\s*\S+", text) or [text]


@dataclass
class Script:
    models: list[str]
    name: str = "scripted"
    rules: list[Rule] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    url: str = ""  # set by serve()
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set on every call event

    def on(self, model: str | None = None, contains: str | None = None,
           call: int | None = None, **reply: Any) -> Script:
        """Add a rule; the first rule that matches a call decides its reply."""
        self.rules.append(Rule(model, contains, call, Reply(**reply)))
        return self

    def reply_for(self, model: str, prompt: str, index: int) -> Reply:
        for rule in self.rules:
            if rule.matches(model, prompt, index):
                return rule.reply
        return Reply()

    # ------------------------------------------------------------ what the tests read
    def asked(self, model: str | None = None) -> list[Call]:
        return [c for c in self.calls if model is None or c.model == model]

    def order(self) -> list[str]:
        """The models asked, in the order the calls arrived."""
        return [c.model for c in self.calls]

    def running(self) -> list[Call]:
        return [c for c in self.calls if c.outcome == "running"]

    async def wait(self, pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
        """Until pred(self) holds (checked on every call event)."""
        async def loop() -> None:
            while not pred(self):
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), timeout)

    def _event(self) -> None:
        self.changed.set()


SCRIPT = web.AppKey("script", Script)


def _err(status: int, message: str, type_: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": type_, "param": None,
                                        "code": status}}, status=status)


def _usage(call: Call, n: int) -> dict:
    prompt = len(call.prompt.split()) + len(call.messages)
    return {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}


async def list_models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "scripted"}
        for m in request.app[SCRIPT].models]})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"detail": "Not Found"}, status=404)


async def chat(request: web.Request) -> web.StreamResponse:
    script = request.app[SCRIPT]
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _err(400, "could not decode the JSON body", "BadRequestError")
    model = body.get("model")
    if model not in script.models:
        return _err(404, f"The model `{model}` does not exist.", "NotFoundError")
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    index = sum(1 for c in script.calls if c.model == model)
    call = Call(seq=len(script.calls), index=index, model=model, messages=messages,
                body=body, headers=dict(request.headers), started=time.monotonic())
    call.reply = reply = script.reply_for(model, prompt_text(messages), index)
    script.calls.append(call)
    script._event()
    try:
        resp = await _answer(request, call, reply, script)
    except (asyncio.CancelledError, ConnectionResetError):
        call.outcome = "cancelled"  # the test server cancels a handler whose client left
        raise
    finally:
        call.ended = time.monotonic()
        script._event()
    return resp


async def _answer(request: web.Request, call: Call, reply: Reply,
                  script: Script) -> web.StreamResponse:
    if reply.hang:
        await asyncio.Event().wait()  # until the client gives up (cancelled)
    if reply.hold:
        await asyncio.sleep(reply.hold)
    if reply.status is not None:
        call.outcome, call.first_byte = "error", time.monotonic()
        return _err(reply.status, reply.message,
                    "BadRequestError" if reply.status < 500 else "InternalServerError")
    if reply.raw is not None:
        call.outcome, call.first_byte = "garbage", time.monotonic()
        return web.Response(body=reply.raw, content_type="text/plain")
    text = reply.text if reply.text is not None else f"{call.model} answer {call.index}"
    calls = reply.tool_calls
    words = [] if calls else tokens_of(text)
    finish = reply.finish_reason or ("tool_calls" if calls else "stop")
    created = int(time.time())
    cid = f"chatcmpl-{script.name}-{call.seq}"
    if not call.body.get("stream"):
        if reply.delay:
            await asyncio.sleep(reply.delay * len(words))
        message: dict = {"role": "assistant", "content": None if calls else text}
        if calls:
            message["tool_calls"] = [{"id": i, "type": "function",
                                      "function": {"name": n, "arguments": a}}
                                     for i, n, a in calls]
        call.outcome, call.first_byte = "ok", time.monotonic()
        return web.json_response({
            "id": cid, "object": "chat.completion", "created": created, "model": call.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
            "usage": _usage(call, len(words))})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    call.first_byte = time.monotonic()

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        return ("data: " + json.dumps({
            "id": cid, "object": "chat.completion.chunk", "created": created,
            "model": call.model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                              "finish_reason": finish_reason}]})
                + "\n\n").encode()

    await resp.write(chunk({"role": "assistant", "content": ""}))
    for j, (tid, name, args) in enumerate(calls or ()):
        await resp.write(chunk({"tool_calls": [{"index": j, "id": tid, "type": "function",
                                                "function": {"name": name,
                                                             "arguments": ""}}]}))
        for k in range(0, len(args), 8):
            await resp.write(chunk({"tool_calls": [{"index": j, "function": {
                "arguments": args[k:k + 8]}}]}))
    for i, word in enumerate(words):
        if reply.die_after is not None and i == reply.die_after:
            call.outcome = "died"
            assert request.transport is not None
            request.transport.close()  # the backend dies mid-stream
            return resp
        if reply.delay:
            await asyncio.sleep(reply.delay)
        await resp.write(chunk({"content": word}))
    await resp.write(chunk({}, finish))
    if (call.body.get("stream_options") or {}).get("include_usage"):
        await resp.write(("data: " + json.dumps({
            "id": cid, "object": "chat.completion.chunk", "created": created,
            "model": call.model, "choices": [], "usage": _usage(call, len(words))})
                          + "\n\n").encode())
    await resp.write(b"data: [DONE]\n\n")
    call.outcome = "ok"
    return resp


def make_app(models: list[str], name: str = "scripted") -> web.Application:
    app = web.Application()
    app[SCRIPT] = Script(list(models), name)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def serve(aiohttp_server, models: list[str], name: str = "scripted") -> Script:  # type: ignore[no-untyped-def]
    """Start one scripted server on 127.0.0.1 (pytest-aiohttp's aiohttp_server): its
    Script, with .url set (no trailing slash)."""
    server = await aiohttp_server(make_app(models, name))
    script = server.app[SCRIPT]
    script.url = str(server.make_url("")).rstrip("/")
    return script
