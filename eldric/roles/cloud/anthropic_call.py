"""Calling an Anthropic backend: a chat request translated, /v1/messages called, the reply
translated back; a client's own Messages request (and count_tokens) relayed as it is
through the core (relay). Another client API (/v1/responses, Ollama's /api/chat…) comes
as its translator's Chat Completions body: the reply, once Chat Completions again, goes
on through that translator (_ToClient), so the loop below serves every client API.

This is deliberately off the zero-copy core (DESIGN: roles that translate a protocol do so
outside it). Failures before anything reached the client raise UpstreamFailure like the
core does, so the cloud handler fails over to the next backend the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.errors import error_json
from eldric.roles.cloud import openai_call
from eldric.stream import UpstreamFailure
from eldric.stream.sse import EventSplitter, Tap, Translating
from eldric.stream.upstream_errors import normalise
from eldric.wire import dialect
from eldric.wire.anthropic_egress import from_anthropic, to_anthropic
from eldric.wire.anthropic_egress_stream import StreamTranslator
from eldric.wire.anthropic_shared import ERRORS, usage_counts
from eldric.wire.cluster import covers
from eldric.wire.translate import Translator

if TYPE_CHECKING:  # both import the kinds table, which names this module's call
    from eldric.roles.cloud.backends import Backend
    from eldric.roles.cloud.state import CloudState

log = structlog.get_logger("eldric.cloud")

_enc = msgspec.json.Encoder()


async def call(request: web.Request, cs: CloudState, b: Backend, model: str,
               body: bytes, head: Any, *, translate: Translator | None = None,
               keep: Tap | None = None) -> web.StreamResponse:
    """`head` is the chat head the handler decoded (the body is valid JSON by then).
    Anthropic's own paths (/v1/messages, count_tokens) are relayed as they are. With
    `translate` (a client API's translator; `body` its chat request) the reply goes back
    through it; `keep` reads what the client gets
    (the /v1/responses store's tap)."""
    if covers(("/v1/messages",), request.path):
        return await relay(request, cs, b, model, body, head)
    data = msgspec.json.decode(body)
    stream = head.stream
    include_usage = bool(head.stream_options and head.stream_options.include_usage)
    payload = to_anthropic(data, model=model)
    payload["stream"] = stream
    hop = request[keys.HOP]
    hop.upstream = b.state.id
    bus = request.app[keys.BUS]
    headers = {**b.auth_headers(), "Content-Type": "application/json",
               "X-Request-ID": hop.request_id}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=cs.timeouts.connect,
                                    sock_read=cs.timeouts.first_byte)
    bus.request_started(b.state)
    outcome = "error"
    try:
        try:
            resp = await request.app[keys.SESSION].post(b.url + "/v1/messages",
                                                         data=_enc.encode(payload),
                                                         headers=headers, timeout=timeout)
        except TimeoutError:
            raise UpstreamFailure.of(b.state.id, "timeout", 504,
                                     f"backend {b.name} gave no reply in time") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamFailure.of(b.state.id, "connect", 503,
                        f"backend {b.name} is unreachable: {type(exc).__name__}") from None
        async with resp:
            if resp.status in (401, 403):
                raise b.key_refused(resp.status)
            if resp.status >= 400:
                status, err = map_error(resp.status, await resp.read())
                raise UpstreamFailure(b.state.id, "status", status, err)
            if not stream:
                whole = await _whole(cs, b, model, await resp.read(), translate)
                outcome = "ok"
                return whole
            outcome, out = await _stream(request, cs, b, model, resp, include_usage,
                                         _ToClient(translate, keep))
            return out
    except UpstreamFailure as exc:
        if exc.kind == "status" and exc.status < 500 and exc.status != 429:
            outcome = "client_error"
        raise
    finally:
        bus.request_finished(b.state, outcome)


def relay(request: web.Request, cs: CloudState, b: Backend, model: str, body: bytes,
          head: Any) -> Awaitable[web.StreamResponse]:
    """A client's own Messages request through the zero-copy core, with the backend's
    key; the client's anthropic-version is kept where it sent one (its body is written
    for that version), else eldric's."""
    headers = b.auth_headers()
    if request.headers.get("anthropic-version"):
        del headers["anthropic-version"]
    return openai_call.call(request, cs, b, model, body, head, headers=headers,
                            usage=usage_counts)


async def _whole(cs: CloudState, b: Backend, model: str, raw: bytes,
                 translate: Translator | None) -> web.Response:
    """A whole Anthropic message as an OpenAI chat completion, its usage counted; then
    as the client's API has it, where a translator is given."""
    try:
        out = from_anthropic(msgspec.json.decode(raw), model=model)
        body = _enc.encode(out)
        if translate is not None:  # its ValueError: a chat completion it cannot read
            body = translate.whole(body)
    except (msgspec.DecodeError, TypeError, KeyError, AttributeError, ValueError) as exc:
        # Not a message (a proxy's page, a cut body): the backend failed, so another one
        # may answer; it is not marked down for it.
        message = (f"backend {b.name} sent a 200 reply eldric cannot read as an "
                   f"Anthropic message ({type(exc).__name__})")
        raise UpstreamFailure(b.state.id, "status", 502, error_json(
            502, message, code="upstream_error")) from None
    usage = out.get("usage") or {}
    cs.metrics.count_tokens(b.name, model, usage.get("prompt_tokens", 0),
                            usage.get("completion_tokens", 0))
    return web.Response(body=body, content_type="application/json",
                        headers={"X-Eldric-Backend": b.name})


class _ToClient:
    """The stream's last stage: the chat chunk events the StreamTranslator made as the
    client gets them. Without a translator (a /v1/chat/completions client) they go out as
    they are; with one they go on through it as in the core's relay (sse.Translating:
    each event through feed(), the end through close(), `keep` reading what goes out)."""

    __slots__ = ("translate", "onward")

    def __init__(self, translate: Translator | None, keep: Tap | None) -> None:
        self.translate = translate
        self.onward = Translating(translate, keep) if translate is not None else None

    @property
    def media_type(self) -> str:
        return "text/event-stream" if self.translate is None else self.translate.media_type

    def events(self, events: list[bytes], end: bool = False) -> bytes:
        data = b"".join(events)
        if self.onward is None:
            return data
        return self.onward.feed(data) + (self.onward.close() if end else b"")

    def cut(self, message: str) -> bytes:
        """The backend failed or ended early: the client API's terminal error event."""
        if self.translate is None:
            return dialect.OPENAI.stream_error(502, message, "upstream_error")
        return self.translate.cut(502, message, "upstream_error")


async def _stream(request: web.Request, cs: CloudState, b: Backend, model: str,
                  resp: aiohttp.ClientResponse, include_usage: bool,
                  client: _ToClient) -> tuple[str, web.StreamResponse]:
    translator = StreamTranslator(model=model, include_usage=include_usage)
    pending: list[bytes] = []
    splitter = EventSplitter(lambda event: pending.extend(translator.feed(event)))
    out = web.StreamResponse(headers={"Content-Type": client.media_type,
                                      "Cache-Control": "no-cache", "X-Eldric-Backend": b.name,
                                      "X-Request-ID": request[keys.HOP].request_id})
    await out.prepare(request)
    try:
        async for chunk in resp.content.iter_any():
            splitter.feed(chunk)
            if pending:
                await out.write(client.events(pending))
                pending.clear()
        splitter.close()  # an event left without its blank line goes to pending too
        if translator.complete or translator.errored:
            await out.write(client.events([*pending, *translator.finish()], end=True))
        else:  # the connection ended before message_stop: not a whole reply
            await out.write(client.events(pending)
                            + client.cut(f"backend {b.name} ended the reply early"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("upstream_failed_mid_stream", backend=b.name, error=repr(exc))
        await out.write(client.cut(f"backend {b.name} failed mid-reply: "
                                   f"{type(exc).__name__}"))
        await out.write_eof()
        return "error", out
    if translator.usage is not None:
        cs.metrics.count_tokens(b.name, model, *translator.usage)
    await out.write_eof()
    return "ok", out


def map_error(status: int, body: bytes) -> tuple[int, bytes]:
    """Anthropic error reply -> (status, OpenAI-shaped error JSON). The status is kept,
    except Anthropic's own 529 (overloaded), which becomes 503."""
    if status == 529:
        status = 503
    try:
        data = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return status, normalise(status, body, "anthropic")  # e.g. a proxy's HTML page
    otype, code, _ = ERRORS.get(err.get("type"), (None, err.get("type"), status))
    return status, error_json(status, err["message"], type=otype, code=code)

