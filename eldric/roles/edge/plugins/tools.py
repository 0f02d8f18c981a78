"""Plugin tools offered to the model, and the edge running them: the tool loop.

A chat completion for a model that enabled tool plugins apply to gets their tools added
to `tools` (after the client's own). When the model answers with tool_calls for plugin
tools only, the edge runs them (each a `tool` call to its plugin's process, side by
side), appends the assistant's message and one `tool` message per call, and asks again,
up to `max_tool_rounds` times; the last round offers no plugin tool, so the model must
answer. The final answer goes to the client as it asked: whole, or streamed as the model
writes it (each round's text is streamed as it comes; a round's tool-call deltas are held
until the round ends, since only then is it known whose calls they are).

Tool calls the client declared go back to the client untouched. Mixed (the model calls
a client's tool and a plugin's in one reply): the client's win: the reply goes to the
client with its own calls only (the plugin's are dropped, not run: the client could not
answer them, and answering half a turn would leave the conversation with a call nobody
answered). A name both declare is the client's.

A tool that fails (a crash, its deadline, a bad reply) is not the client's error: the
model is told, as the tool's result (`error: …`), and may answer without it. Which
plugin tools a request is offered: with no `X-Eldric-Tools` header, those of the
plugins that apply to its model and are offered "always" (manifest `offer`, or the
plugin's valve `offer`); with one, those it names (plugin ids or tool names, `all` for
every one that applies, `none` for none). By default (`offer: "request"`) a tool plugin
adds nothing to a request that did not ask: enabling one never sends `tools` to a
backend that refuses them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from eldric import keys
from eldric.errors import EldricError, UpstreamFailure
from eldric.exchange import Answer, LaneRequest, Sink
from eldric.roles.edge.plugins.process import PluginError, PluginProcess, PluginRefusal
from eldric.roles.edge.plugins import spans
from eldric.roles.edge.plugins.replies import JSON, SSE, head
from eldric.roles.edge.plugins.upstream import ask
from eldric.roles.edge.state import EdgeState
from eldric.stream.sse import Framer
from eldric.wire import dialect

log = structlog.get_logger("eldric.edge.plugins")
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()
HEADER = "X-Eldric-Tools"


@dataclass
class Owner:
    """A plugin tool: the plugin it belongs to and its OpenAI function spec."""
    plugin: str
    process: PluginProcess
    spec: dict[str, Any]


def wanted(header: str | None) -> set[str] | None:
    """What the X-Eldric-Tools header asks for: None (no header: the plugins offered
    always), a set of plugin ids or tool names, `{"all"}`, or empty (`none`)."""
    if header is None:
        return None
    asked = {w.strip() for w in header.split(",") if w.strip()}
    return set() if "none" in asked else asked


def offered(offer: str, asked: set[str] | None) -> bool:
    """Whether a tool plugin with this `offer` may serve a request that asked `asked`
    (its tools' names are checked by toolbox, once it is started)."""
    return offer == "always" if asked is None else bool(asked)


def toolbox(plugins: Iterable[tuple[str, PluginProcess]],
            asked: set[str] | None) -> dict[str, Owner]:
    """The plugin tools one request is offered, by name, from the (id, process) of the
    enabled tool plugins that apply to its model and are offered to it (started: their
    initialize said which tools), narrowed by the X-Eldric-Tools header's names."""
    every = asked is None or "all" in asked or "*" in asked
    box: dict[str, Owner] = {}
    for pid, process in plugins:
        for spec in process.info.get("tools") or ():
            name = _name(spec)
            if name and (every or pid in asked or name in asked):  # type: ignore[operator]
                box.setdefault(name, Owner(pid, process, spec))
    return box


def _name(spec: Any) -> str | None:
    fn = spec.get("function") if isinstance(spec, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) else None


@dataclass
class Loop:
    """One request's tool loop."""
    request: LaneRequest
    es: EdgeState
    body: dict[str, Any]
    box: dict[str, Owner]
    user: dict[str, Any]
    headers: dict[str, str]  # the edge's reply headers (rate limits, CORS)
    max_rounds: int
    rounds: int = 0
    usage: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        declared = [t for t in self.body.get("tools") or () if isinstance(t, dict)]
        self.client_tools = {n for n in map(_name, declared) if n}
        for name in self.client_tools:  # a name both declare is the client's
            self.box.pop(name, None)
        self.declared = declared
        self.messages = list(self.body.get("messages") or [])

    def round_body(self, stream: bool) -> dict[str, Any]:
        body = dict(self.body)
        body["messages"] = self.messages
        last = self.rounds >= self.max_rounds
        tools = self.declared + ([] if last else [o.spec for o in self.box.values()])
        if tools:
            body["tools"] = tools
        else:
            body.pop("tools", None)
            body.pop("tool_choice", None)
        body["stream"] = stream
        if stream:  # the rounds' usage is summed for the client (who may not want it)
            body["stream_options"] = {**(body.get("stream_options") or {}),
                                      "include_usage": True}
        return body

    def split(self, calls: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
        """(the plugins' calls, everyone else's): a name no plugin tool of this request
        has is the client's business, whether it declared it or the model made it up."""
        mine = [c for c in calls if _call_name(c) in self.box]
        return mine, [c for c in calls if _call_name(c) not in self.box]

    def add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                if isinstance(usage.get(k), int):
                    self.usage[k] = self.usage.get(k, 0) + usage[k]

    async def run_tools(self, content: Any, calls: list[dict[str, Any]]) -> None:
        """Run the plugins' calls side by side; the assistant's turn and the results join
        the conversation for the next round."""
        results = await asyncio.gather(*(self._one(c) for c in calls))
        self.messages.append({"role": "assistant", "content": content or None,
                              "tool_calls": calls})
        for c, text in zip(calls, results, strict=True):
            self.messages.append({"role": "tool", "tool_call_id": c.get("id") or "",
                                  "content": text})
        self.rounds += 1

    async def _one(self, call: dict[str, Any]) -> str:
        name = _call_name(call) or ""
        owner = self.box[name]  # split() put only the box's calls here
        raw = (call.get("function") or {}).get("arguments") or "{}"
        try:
            arguments = _dec.decode(raw) if isinstance(raw, str) else raw
        except msgspec.DecodeError:
            return f"error: the arguments of {name} are not JSON: {raw[:200]!r}"
        if not isinstance(arguments, dict):
            return f"error: the arguments of {name} must be a JSON object"
        with spans.call(self.request, "tool", owner.plugin, name) as span:
            try:
                reply = await owner.process.call("tool", {"name": name, "arguments": arguments,
                                                          "user": self.user})
            except (PluginError, PluginRefusal) as exc:
                kind = getattr(exc, "kind", "refused")
                log.warning("plugin_tool_failed", plugin=owner.plugin, tool=name, error=str(exc))
                spans.failed(span, kind, str(exc))
                if getattr(owner.process, "fail_closed", False):  # an MCP server's fail_mode
                    raise EldricError(f"the tool {name} of {owner.plugin} failed: {exc}",
                                      status=502, code="tool_failed") from None
                return f"error: the tool {name} failed ({kind}): {exc}"
            span.set_attribute("eldric.outcome", "ok")
        return str(reply["content"])

    # ------------------------------------------------------------ whole replies

    async def whole(self) -> Answer:
        lane = self.request[keys.HOP].lane
        while True:
            try:
                fetched = await ask(self.request, self.es, self.round_body(False))
                data = await fetched.read_all()
            except UpstreamFailure as exc:
                return self._relayed(exc)
            reply = _completion(data)
            self.add_usage(reply.get("usage"))
            choice = reply["choices"][0]
            message = choice["message"]
            mine, theirs = self.split(message.get("tool_calls") or [])
            if mine and not theirs and self.rounds < self.max_rounds:
                await self.run_tools(message.get("content"), mine)
                continue
            if mine:  # the client's win (or the last round): only what it can answer
                if theirs:
                    message["tool_calls"] = theirs
                else:
                    message.pop("tool_calls", None)
                    choice["finish_reason"] = "stop"
            if self.usage:
                reply["usage"] = self.usage
            return lane.reply(self.request, 200, head(
                self.request, self.headers, JSON, **{"X-Eldric-Tool-Rounds": str(self.rounds)}),
                _enc.encode(reply))

    def _relayed(self, exc: UpstreamFailure) -> Answer:
        resp = exc.response()
        resp.headers.update(self.headers)
        return resp

    # ------------------------------------------------------------ streamed replies

    async def streamed(self) -> Answer:
        out = _Out(self.request, self.headers)
        wants_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))
        try:
            while True:
                fetched = await ask(self.request, self.es, self.round_body(True))
                rnd = _Round(first=self.rounds == 0)
                try:
                    async for chunk in fetched.chunks():
                        for event, n in rnd.framer.feed(chunk):
                            data = rnd.take(event[:n])
                            if data is not None:
                                await out.write(data)
                finally:  # the client left mid-round: the model's stream is let go now
                    fetched.close()  # (idempotent: read to its end, it is closed already)
                if rnd.failed:  # the model's own error event went out: that is the end
                    return await out.end()
                if not rnd.events:
                    raise EldricError("the model's stream held no chat completion chunk",
                                      status=502, code="bad_upstream_reply")
                mine, theirs = self.split(rnd.calls())
                self.add_usage(rnd.usage)
                if mine and not theirs and self.rounds < self.max_rounds:
                    await self.run_tools(rnd.content, mine)
                    continue
                for j, c in enumerate(theirs):  # the client's calls, whole, in order
                    await out.write(rnd.event({"tool_calls": [{"index": j, **c}]}))
                finish = (rnd.finish or {}).get("finish_reason") or "stop"
                await out.write(rnd.event({}, "stop" if mine and not theirs else finish))
                if wants_usage and self.usage:
                    await out.write(rnd.data({**rnd.base, "choices": [], "usage": self.usage}))
                return await out.end()
        except (UpstreamFailure, EldricError) as exc:
            if out.sink is None:  # nothing sent yet: the error in the client's shape
                if isinstance(exc, UpstreamFailure):
                    return self._relayed(exc)
                raise
            code = exc.code if isinstance(exc, EldricError) else f"upstream_{exc.kind}"
            await out.write(dialect.OPENAI.stream_error(exc.status, exc.message,
                                                        code or "tool_loop_failed"))
            return await out.end()


class _Out:
    """The client's stream, begun at its first byte: a loop that fails before it answers
    in the client's error shape with its status, not with a broken stream."""

    def __init__(self, request: LaneRequest, headers: dict[str, str]) -> None:
        self.request = request
        self.headers = headers
        self.sink: Sink | None = None

    async def write(self, data: bytes) -> None:
        if self.sink is None:
            self.sink = self.request[keys.HOP].lane.sink(
                self.request, 200, head(self.request, self.headers, SSE), None)
            await self.sink.start()
        await self.sink.write(data)

    async def end(self) -> Answer:
        await self.write(b"data: [DONE]\n\n")
        assert self.sink is not None
        await self.sink.end()
        return self.sink.result  # type: ignore[no-any-return]


def _completion(data: bytes) -> dict[str, Any]:
    """A whole chat completion with a first choice's message, or a 502 (the model's
    reply is not one: the loop cannot go on, and must not guess)."""
    try:
        reply = _dec.decode(data)
        choice = reply["choices"][0]
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            return reply  # type: ignore[no-any-return]
    except (msgspec.DecodeError, KeyError, IndexError, TypeError):
        pass
    raise EldricError(f"the model's reply is not a chat completion: {data[:200]!r}",
                      status=502, code="bad_upstream_reply")


def _call_name(call: Any) -> str | None:
    fn = call.get("function") if isinstance(call, dict) else None
    return fn.get("name") if isinstance(fn, dict) else None


class _Round:
    """One streamed round: text deltas go on to the client at once; tool-call deltas are
    put together by index; the finish chunk, the usage chunk and [DONE] are held."""

    def __init__(self, first: bool) -> None:
        self.framer = Framer()
        self.first = first
        self.parts: dict[int, dict[str, Any]] = {}
        self.text: list[str] = []
        self.finish: dict[str, Any] | None = None
        self.usage: Any = None
        self.events = 0  # the chunks that were chat completion chunks
        self.failed = False  # ... one of them the model's error event
        self.base: dict[str, Any] = {"object": "chat.completion.chunk"}

    @property
    def content(self) -> str:
        return "".join(self.text)

    def take(self, event: bytes) -> bytes | None:
        """The bytes to send the client for one upstream event (None: nothing now)."""
        data = b"\n".join(line[5:].lstrip() for line in event.splitlines()
                          if line.startswith(b"data:"))
        if not data or data == b"[DONE]":
            return None
        try:
            obj = _dec.decode(data)
        except msgspec.DecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        if "error" in obj:  # the model's stream failed: the client hears it as sent
            self.events += 1
            self.failed = True
            return event + b"\n\n"
        self.events += 1
        self.base = {k: obj[k] for k in ("id", "object", "created", "model") if k in obj}
        if obj.get("usage"):
            self.usage = obj["usage"]
        choices = obj.get("choices") or []
        if not choices:
            return None
        choice = choices[0]
        delta = dict(choice.get("delta") or {})
        for part in delta.pop("tool_calls", None) or ():
            self._gather(part)
        if choice.get("finish_reason"):
            self.finish = choice
            if not delta.get("content"):
                return None
        piece = delta.get("content")
        if isinstance(piece, str):
            self.text.append(piece)
        if not piece and not (self.first and delta.get("role")):
            return None  # a later round's role chunk, or a tool-call-only chunk
        return self.data({**obj, "choices": [{**choice, "delta": delta, "finish_reason": None}]})

    def _gather(self, part: Any) -> None:
        if not isinstance(part, dict):
            return
        i = part.get("index", 0)
        call = self.parts.setdefault(i, {"id": "", "type": "function",
                                         "function": {"name": "", "arguments": ""}})
        if part.get("id"):
            call["id"] = part["id"]
        fn = part.get("function") or {}
        if fn.get("name"):
            call["function"]["name"] += fn["name"]
        if isinstance(fn.get("arguments"), str):
            call["function"]["arguments"] += fn["arguments"]

    def calls(self) -> list[dict[str, Any]]:
        return [self.parts[i] for i in sorted(self.parts)]

    def event(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self.data({**self.base, "choices": [{"index": 0, "delta": delta,
                                                    "logprobs": None,
                                                    "finish_reason": finish}]})

    @staticmethod
    def data(obj: dict[str, Any]) -> bytes:
        return b"data: " + _enc.encode(obj) + b"\n\n"
