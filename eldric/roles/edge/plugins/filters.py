"""Filters on a chat completion: inlet before routing, outlet on a whole reply, stream
per SSE event as the tokens flow, each enabled filter in priority order.

Only requests that have a filter for their model come here (handlers.proxy asks
Plugins.filters first): everything else is relayed byte for byte as before. For those
that do, the forwarding core is left as it is: the request's lane (eldric.exchange.Lane)
is wrapped for the one call, so a whole reply is held (Held) and run through the outlets
before it is sent, and a streamed one goes through a sink that re-frames it event by
event (FilteredSink).

A filter that fails (down, timed out, a bad reply, an exception in it) follows its
fail_mode: closed, the client gets 502 `plugin_failed` naming it (mid-stream: the
stream ends with that error event, and the upstream is let go); open, the request or
event goes on as it was, logged and counted (`skipped` in the status API). A refusal
(plugin.refuse in an inlet) is the client's 400 or 403, code `plugin_refused`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog

from eldric import keys
from eldric.errors import EldricError
from eldric.exchange import Answer, LaneRequest, RawPairs, Sink
from eldric.roles.edge.plugins import spans
from eldric.roles.edge.plugins.host import Plugin
from eldric.roles.edge.plugins.process import PluginError, PluginRefusal
from eldric.stream.sse import Framer
from eldric.wire import dialect

log = structlog.get_logger("eldric.edge.plugins")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


class PluginFailed(EldricError):
    status = 502
    code = "plugin_failed"


def _failed(p: Plugin, hook: str, e: PluginError) -> PluginFailed | None:
    """A closed filter's failure as the client's error; None when it fails open (then
    the request goes on without it, logged and counted)."""
    assert p.manifest is not None
    if p.manifest.fail_mode == "closed":
        return PluginFailed(f"plugin {p.id} failed ({hook}: {e.kind}); the request was not "
                            "served unfiltered because the plugin fails closed",
                            param=p.id)
    p.skipped += 1
    log.warning("plugin_skipped", plugin=p.id, hook=hook, kind=e.kind, error=str(e))
    return None


class PathUnfiltered(EldricError):
    status = 403
    code = "plugin_path_unfiltered"


def unseen(chain: tuple[Plugin, ...], path: str, model: str | None) -> None:
    """A request on a path filters do not see (they see Chat Completions only) for a
    model filters apply to: refused when one of them fails closed (a client must not get
    round a filter by asking in another API's shape), else sent on without them and
    counted as their skip."""
    for p in chain:
        if p.manifest is not None and p.manifest.fail_mode == "closed":
            raise PathUnfiltered(
                f"plugin {p.id} filters model {model or ''!r} and fails closed, but filters "
                f"see /v1/chat/completions only: {path} is refused for this model (send it "
                "as a chat completion)", param=p.id)
    for p in chain:
        p.skipped += 1


async def _through(hook: str, chain: tuple[Plugin, ...], body: bytes,
                   user: dict[str, str], hop: Any = None) -> bytes:
    """A JSON body (the request for "inlet", a whole reply for "outlet") through every
    filter with that hook; raises the client's error on a refusal or a closed filter's
    failure. Anything not a JSON object passes as it came (the router judges it)."""
    hooked = [p for p in chain if p.process is not None and hook in p.hooks()]
    if not hooked:
        return body
    try:
        doc = _decode(body)
    except msgspec.DecodeError:
        return body
    if not isinstance(doc, dict):
        return body
    for p in hooked:
        assert p.process is not None
        # its span (NULL unless the request is traced) ends before any error is raised,
        # so a refusal is not marked ERROR and a failure is marked with its kind
        with spans.on(hop, hook, p.id) as span:
            refused: PluginRefusal | None = None
            failed: PluginError | None = None
            try:
                doc = (await p.process.call(hook, {"body": doc, "user": user}))["body"]
                span.set_attribute("eldric.outcome", "ok")
            except PluginRefusal as r:  # an inlet's, on purpose: not a failure
                span.set_attribute("eldric.outcome", "refused")
                refused = r
            except PluginError as e:
                spans.failed(span, e.kind, str(e))
                failed = e
        if refused is not None:
            raise EldricError(f"refused by plugin {p.id}: {refused.reason}",
                              status=refused.status, code="plugin_refused", param=p.id)
        if failed is not None:
            err = _failed(p, hook, failed)
            if err is not None:
                raise err
    return _encode(doc)


def inlet(chain: tuple[Plugin, ...], body: bytes, user: dict[str, str],
          hop: Any = None) -> Awaitable[bytes]:
    """`hop`: the request's, for its eldric.plugin.inlet spans when traced."""
    return _through("inlet", chain, body, user, hop)


def outlet(chain: tuple[Plugin, ...], body: bytes, user: dict[str, str],
           hop: Any = None) -> Awaitable[bytes]:
    return _through("outlet", chain, body, user, hop)


class Held:
    """A whole reply the wrapped lane kept back for the outlets."""

    __slots__ = ("status", "headers", "body")
    prepared = True

    def __init__(self, status: int, headers: RawPairs, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


def _content_type(headers: RawPairs) -> bytes:
    for k, v in headers:
        if k.lower() == b"content-type":
            return v.split(b";")[0].strip().lower()
    return b""


class FilteredLane:
    """The request's lane for one filtered forward: whole replies held, streamed ones
    through FilteredSink; everything else as the real lane does it."""

    __slots__ = ("lane", "fast", "chain", "user", "path")

    def __init__(self, lane: Any, chain: tuple[Plugin, ...], user: dict[str, str],
                 path: str) -> None:
        self.lane, self.fast, self.chain, self.user, self.path = lane, lane.fast, chain, user, path

    def reply(self, request: Any, status: int, headers: RawPairs, body: bytes) -> Held:
        return Held(status, headers, body)

    def sink(self, request: Any, status: int, headers: RawPairs, length: int | None) -> Sink:
        return FilteredSink(self, request, status, headers, length)

    def route(self, request: Any) -> str:
        return str(self.lane.route(request))


class FilteredSink:
    """A streamed reply through the filters. SSE: framed into events, each chunk's JSON
    through every stream hook (None drops it), written on at once. Anything else (a
    whole reply without a length): gathered, then through the outlets at the end."""

    __slots__ = ("lane", "request", "status", "headers", "length", "sse", "chain",
                 "_real", "_framer", "_body", "_closed")

    def __init__(self, lane: FilteredLane, request: Any, status: int, headers: RawPairs,
                 length: int | None) -> None:
        self.lane, self.request, self.status, self.headers = lane, request, status, headers
        self.length = length
        self.sse = _content_type(headers) == b"text/event-stream"
        self.chain = tuple(p for p in lane.chain if p.process is not None
                           and "stream" in p.hooks()) if self.sse else lane.chain
        self._real: Sink | None = None
        self._framer = Framer()
        self._body: list[bytes] = []
        self._closed = False

    def _open(self, length: int | None) -> Sink:
        if self._real is None:
            self._real = self.lane.lane.sink(self.request, self.status, self.headers, length)
        return self._real

    async def start(self, first: bytes = b"") -> None:
        if self.sse:
            await self._open(None).start()  # events change size: never the upstream's length
        if first:
            await self.write(first)

    async def write(self, chunk: bytes) -> None:
        if self._closed:
            raise ConnectionError("the stream was ended by a plugin that failed closed")
        if not self.sse:
            self._body.append(chunk)
            return
        events = [event[:n] for event, n in self._framer.feed(chunk)]
        if events:
            out = await self._events(events)
            if out:
                await self._open(None).write(out)
        if self._closed:
            raise ConnectionError("the stream was ended by a plugin that failed closed")

    async def _events(self, events: list[bytes]) -> bytes:
        """SSE events (without their blank lines) through the stream hooks: the bytes to
        send on. The events of one chunk go to a filter together, pipelined (its child
        answers them in order): one round trip per chunk and filter, not per event."""
        parsed: list[tuple[list[bytes], int, Any] | bytes] = [_parse(e) for e in events]
        for p in self.chain:
            assert p.process is not None
            todo = [i for i, e in enumerate(parsed) if not isinstance(e, bytes) and e[2] is not None]
            if not todo:
                break
            call = p.process.call
            got = await asyncio.gather(*(call("stream", {"event": parsed[i][2],  # type: ignore[index]
                                                         "user": self.lane.user})
                                         for i in todo), return_exceptions=True)
            for i, result in zip(todo, got):
                entry = parsed[i]
                assert not isinstance(entry, bytes)
                if isinstance(result, PluginError):
                    err = _failed(p, "stream", result)
                    if err is not None:  # closed: the stream ends here, this chunk unsent
                        await self._cut(err)
                        return b""
                    continue  # open: the event as it was before this filter
                if isinstance(result, BaseException):
                    raise result
                parsed[i] = (entry[0], entry[1], result["event"])
        return _joined(parsed)

    async def _cut(self, err: PluginFailed) -> None:
        real = self._open(None)
        await real.write(dialect.of_path(self.lane.path).stream_error(
            err.status, err.message, err.code or "plugin_failed"))
        await real.end()
        self._closed = True

    async def end(self, last: bytes = b"") -> None:
        if self._real is None:
            await self.start()
        if last and not self._closed:
            await self.write(last)
        if self._closed:
            return
        if self.sse:
            rest = self._framer.rest()
            real = self._open(None)
            if rest.strip():
                kept = await self._events([rest.rstrip(b"\r\n")])
                if self._closed:
                    return
                if kept:
                    await real.write(kept)
            await real.end()
            return
        body = await outlet(self.chain, b"".join(self._body), self.lane.user,
                            self.request[keys.HOP]) \
            if self.status < 300 else b"".join(self._body)
        real = self._open(len(body))
        await real.start()
        await real.write(body)
        await real.end()

    def abort(self) -> None:
        self._open(None).abort()

    @property
    def result(self) -> Any:
        return self._open(None).result


def _parse(event: bytes) -> tuple[list[bytes], int, Any] | bytes:
    """An event a stream hook sees, as (its lines, the data line's index, the chunk's
    JSON), or its bytes to pass on as they came ([DONE], comments, not JSON)."""
    lines = event.split(b"\n")
    data = [i for i, line in enumerate(lines) if line.startswith(b"data:")]
    if len(data) == 1:
        payload = lines[data[0]][5:].strip()
        if payload.startswith(b"{"):
            try:
                return lines, data[0], _decode(payload)
            except msgspec.DecodeError:
                pass
    return event + b"\n\n"


def _joined(parsed: list[tuple[list[bytes], int, Any] | bytes]) -> bytes:
    """The events again, each with its blank line; one a hook dropped (None) is gone."""
    out = []
    for e in parsed:
        if isinstance(e, bytes):
            out.append(e)
        elif e[2] is not None:
            lines = list(e[0])
            lines[e[1]] = b"data: " + _encode(e[2])
            out.append(b"\n".join(lines) + b"\n\n")
    return b"".join(out)


async def filtered(request: LaneRequest, chain: tuple[Plugin, ...], body: bytes,
                   user: dict[str, str], send: Callable[[bytes], Awaitable[Answer]]) -> Answer:
    """One chat completion through the filters: inlet, then the routers (send), then
    the outlets or the stream hooks on the reply."""
    hop = request[keys.HOP]
    body = await inlet(chain, body, user, hop)
    lane = hop.lane
    hop.lane = FilteredLane(lane, chain, user, request.path)
    try:
        resp = await send(body)
    finally:
        hop.lane = lane
    if isinstance(resp, Held):
        data = resp.body
        if resp.status < 300 and _content_type(resp.headers) == b"application/json":
            data = await outlet(chain, data, user, hop)
        return lane.reply(request, resp.status, resp.headers, data)  # type: ignore[no-any-return]
    return resp
