"""Pipes: virtual models answered by a plugin. Listed in the edge's /v1/models beside
the cluster's (and at /v1/models/{id}); a chat completion for one is the plugin's `pipe`
call, answered in OpenAI's shape: a chat.completion, or a stream of chat.completion.chunk
events as the plugin sends its pieces (pipe.chunk notifications), then [DONE].

A pipe that fails (a crash, its deadline, a bad reply) is a 502 `plugin_failed` naming
it; once the stream has begun, the stream's error event, as any failed stream ends."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import msgspec
import structlog

from eldric import keys
from eldric.errors import EldricError
from eldric.exchange import Answer, LaneRequest
from eldric.roles.edge.plugins.process import PluginError, PluginProcess, PluginRefusal
from eldric.roles.edge.plugins.replies import JSON, SSE, head
from eldric.wire import dialect

log = structlog.get_logger("eldric.edge.plugins")
_enc = msgspec.json.Encoder()


def failed(plugin: str, exc: BaseException) -> EldricError:
    return EldricError(f"plugin {plugin} failed: {exc}", status=502, code="plugin_failed")


def listed(models: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """The virtual models as /v1/models entries: model id -> (plugin id, display name)."""
    return [model_entry(m, pid, name) for m, (pid, name) in models.items()]


def model_entry(model: str, plugin: str, name: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": f"plugin:{plugin}",
            "name": name}


class Piped:
    """One request for a virtual model."""

    def __init__(self, request: LaneRequest, plugin: str, process: PluginProcess,
                 model: str, body: dict[str, Any], user: dict[str, Any],
                 headers: dict[str, str], timeout_ms: int) -> None:
        self.request = request
        self.plugin = plugin
        self.process = process
        self.model = model
        self.body = body
        self.user = user
        self.headers = headers
        self.timeout_ms = timeout_ms
        self.id = f"chatcmpl-{plugin}-{uuid.uuid4().hex[:16]}"
        self.created = int(time.time())

    def _params(self) -> dict[str, Any]:
        return {"model": self.model, "body": self.body, "user": self.user}

    async def whole(self) -> Answer:
        try:
            reply = await self.process.call("pipe", self._params(), self.timeout_ms)
        except (PluginError, PluginRefusal) as exc:
            raise failed(self.plugin, exc) from None
        body = {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "choices": [{
                    "index": 0, "message": {"role": "assistant", "content": reply["content"]},
                    "logprobs": None, "finish_reason": "stop"}]}
        lane = self.request[keys.HOP].lane
        return lane.reply(self.request, 200, head(self.request, self.headers, JSON),
                          _enc.encode(body))

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + _enc.encode({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                              "finish_reason": finish}]}) + b"\n\n"

    async def streamed(self) -> Answer:
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        sent: list[str] = []

        def notify(params: dict[str, Any]) -> None:
            delta = params.get("delta")
            if isinstance(delta, str) and delta:
                pieces.put_nowait(delta)

        call = asyncio.ensure_future(self.process.call("pipe", self._params(),
                                                       self.timeout_ms, notify=notify))
        call.add_done_callback(lambda _: pieces.put_nowait(None))
        # The head waits for the first piece (or the end): a pipe that fails at once is
        # a 502 in the client's shape, not a stream that breaks.
        first = await pieces.get()
        if first is None and call.exception() is not None:
            raise failed(self.plugin, call.exception()) from None  # type: ignore[arg-type]
        lane = self.request[keys.HOP].lane
        sink = lane.sink(self.request, 200, head(self.request, self.headers, SSE), None)
        await sink.start()
        try:
            await sink.write(self._chunk({"role": "assistant", "content": ""}))
            piece = first
            while piece is not None:
                sent.append(piece)
                await sink.write(self._chunk({"content": piece}))
                piece = await pieces.get()
            exc = call.exception()
            if exc is not None:
                err = failed(self.plugin, exc)
                await sink.write(dialect.OPENAI.stream_error(err.status, err.message,
                                                             "plugin_failed"))
            else:
                rest = call.result()["content"][len("".join(sent)):]
                if rest:  # a pipe that returned its text instead of yielding it
                    await sink.write(self._chunk({"content": rest}))
                await sink.write(self._chunk({}, "stop"))
            await sink.write(b"data: [DONE]\n\n")
            await sink.end()
        finally:
            if not call.done():  # the client left: the plugin is told (cancel)
                call.cancel()
        return sink.result
