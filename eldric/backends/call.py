"""The I/O of one native request: the OpenAI body through an Adapter's Egress to the
backend's own API and the reply back (egress.py says the order of the Egress's calls).

One loop serves every native API, both roles (the cloud role's backends, the worker's
own) and every client API: a client's Messages, Responses or Ollama request comes as
its translator's chat body and the chat reply goes on through that translator
(``translate``), as in the core's relay (eldric.stream.sse.Translating). It is off the
zero-copy core on purpose (DESIGN: a hop that translates does so outside it), but it
sends on the core's own connection pool and answers on the request's lane (aiohttp's or
the fast lane's), so keep-alive, TLS and the lanes' framing are the core's.

What it guarantees, like forward():

- before the first byte reached the client, a failure raises UpstreamFailure, so the
  caller may fail over: no connection 503, connect or first-byte timeout 504, the
  backend's error reply as its egress maps it (429/5xx retryable, other 4xx the
  client's answer), a reply eldric cannot read 502, the backend refusing eldric's own
  key 502 ``backend_auth_failed`` (KeyRefused: the cloud role marks the backend);
- after the first byte, a failure (the connection broke, the stream ended before the
  backend said it was finished, a frame eldric cannot read) ends the stream with one
  error event in the client path's dialect (the translator's own) and a clean close;
- the client leaving cancels the upstream request (its connection is closed, so the
  backend stops generating), and the bus counts it; an API whose work outlives the
  connection (Replicate's predictions) gives its egress a ``cancel() -> Outbound | None``
  (optional, not in the Protocol), sent signed in the background then;
- timeouts: connect, first byte, idle between chunks (the pool's timers); no total.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import msgspec
import structlog
from aiohttp import web

from eldric import __version__, keys
from eldric.backends import images
from eldric.backends.egress import Adapter, Context, Egress, Outbound, Reach
from eldric.backends.framing import frames
from eldric.backends.table import CHAT
from eldric.errors import BadRequest, UpstreamFailure, error_json, message_of
from eldric.exchange import Answer, LaneRequest, Sink, encode_headers
from eldric.log import USER_AGENT_PREFIX
from eldric.stream import client
from eldric.stream.forward import _client_left, _read_bounded, _settle
from eldric.stream.headers import upstream_header_block
from eldric.stream.sse import EventSplitter, Tap, Translating
from eldric.stream.target import REPLY_ERRORS, Target, Timeouts, upstream_failure
from eldric.stream.upstream_errors import normalise
from eldric.tasks import spawn
from eldric.wire import dialect, openai_reply, xmltools
from eldric.wire.native.refused import Refused
from eldric.wire.translate import Translator
from eldric.wire.vision import maybe as maybe_images

log = structlog.get_logger("eldric.backends")

_ERROR_BODY_LIMIT = 64 * 1024  # as the core reads an error body
_USER_AGENT = f"{USER_AGENT_PREFIX}{__version__}"
_JSON = b"application/json"


class KeyRefused(UpstreamFailure):
    """The backend refused eldric's own key (401/403): not the client's fault, so not
    its 401. A 502 the caller may fail over from; the cloud role shows auth_failed. A
    status failure, not a "connect" one: a 403 may be this request's alone (Bedrock's
    AccessDeniedException for a model the account has no access to), so it marks nothing
    down (Bus.mark_down); the probe, signed with the same key, judges the key."""

    def __init__(self, reach: Reach, status: int, said: str | None = None) -> None:
        # what the backend said (its egress's reading of the body) is kept: a 403 for
        # one model's access reads as that, not only as a bad key
        super().__init__(reach.state.id, "status", 502, error_json(
            502, f"backend {reach.name} refused its API key (HTTP {status})"
            + (f": {said}" if said else ""), code="backend_auth_failed"))


class _Unreadable(Exception):
    """The backend sent what its API does not promise (a frame, a reply eldric cannot
    translate): the backend's failure, like a broken connection."""


async def send(request: LaneRequest, adapter: Adapter, reach: Reach, body: bytes, *,
               path: str, model: str, timeouts: Timeouts,
               translate: Translator | None = None, keep: Tap | None = None,
               on_usage: Callable[[int, int], None] | None = None,
               reply_headers: Mapping[str, str] | None = None) -> Answer:
    """`body` is the OpenAI JSON for `path` (with `translate`, the translator's chat
    body); `model` the backend's own name for the model; `keep` reads what the client
    gets of a stream (the /v1/responses store's tap); `on_usage(prompt, completion)`
    once the reply said its usage. Raises BadRequest (400) for what the API cannot take,
    UpstreamFailure before the first byte (see the module's docstring)."""
    factory = adapter.ops.get(path)
    if factory is None:
        raise BadRequest(f"backend {reach.name} ({adapter.name}) serves "
                         f"{', '.join(adapter.ops)} only")
    if path == CHAT and xmltools.applies(adapter.tools, reach.options, model):
        # its chat has no tools: eldric's XML emulation, after the client API's translator
        body, translate = xmltools.wrapped(translate, body)
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise BadRequest("the request body is not valid JSON") from None
    if path == CHAT and isinstance(data, dict) and maybe_images(body):  # off text's path
        await images.ready(request.app[keys.SESSION], adapter.vision, adapter.inline_images,
                           reach.name, reach.options, data, model)
    opts = data.get("stream_options") if isinstance(data, dict) else None
    egress = factory(data, Context(model=model, options=reach.options, include_usage=bool(
        isinstance(opts, dict) and opts.get("include_usage"))))
    out = egress.outbound()
    app, hop, up = request.app, request[keys.HOP], reach.state
    bus = app[keys.BUS]
    hop.upstream = up.id
    t0 = time.perf_counter()
    bus.request_started(up)
    outcome, first_at = "error", None
    resp: client.Response | None = None
    reply = _Reply(request, reach, translate, keep, reply_headers)
    translating = None
    if hop.span is not None:  # traced: OpenAI's API (or the client's) to the backend's
        from eldric.trace import otel
        translating = otel.translating(hop.span, None, request.path, adapter.name, model)
    try:
        resp = await _checked(request, adapter, reach, out, egress, timeouts)
        if egress.stream and out.framing != "json" and resp.content_type == _JSON:
            # A JSON head where a stream was asked: the first step of an API whose stream
            # is a second request (Replicate's urls.stream), or a backend that answered
            # whole; either way the body is read first.
            raw = await _body(resp, reach, timeouts)
            nxt = _guarded(egress.follow, raw)
            resp.release()
            resp = None
            if nxt is None:  # whole: sent as the chunks its stream would have been
                events = [e + b"\n\n" for e in _guarded(openai_reply.as_chunks,
                                                        _guarded(egress.whole, raw))]
                await reply.write(events, end=True)
                outcome, first_at = "ok", reply.first_at
                return reply.result
            out = nxt
            resp = await _checked(request, adapter, reach, out, egress, timeouts)
        if not egress.stream:
            raw = await _polled(request, adapter, reach, egress,
                                await _body(resp, reach, timeouts), timeouts)
            answer = _guarded(egress.whole, raw)
            if translate is not None:
                answer = _guarded(translate.whole, answer)
            outcome, first_at = "ok", time.perf_counter()
            return reply.whole(answer)
        outcome = await _stream(resp, egress, out, reply, reach, timeouts)
        first_at = reply.first_at
        return reply.result
    except _Unreadable as exc:
        log.warning("unreadable_native_reply", backend=reach.name, error=str(exc))
        raise UpstreamFailure(up.id, "status", 502, error_json(
            502, f"backend {reach.name} sent a reply eldric cannot read as its API's "
            f"({exc})", code="upstream_error")) from None
    except UpstreamFailure as exc:
        if exc.kind == "unsupported":  # "not here" (501/405) is not the backend's failure
            outcome = "unsupported"
        elif exc.kind == "status" and not exc.retryable:
            outcome = "client_error"
        raise
    except asyncio.CancelledError:
        outcome = "cancelled"
        _client_left(request, up)
        raise
    finally:
        _settle(bus, hop, up, resp, outcome, first_at, t0)
        if translating is not None:
            otel.settle(translating.span, None, outcome)
        if outcome == "cancelled":
            _cancel_upstream(app, adapter, reach, egress, timeouts)
        if outcome == "ok" and on_usage is not None and egress.usage is not None:
            on_usage(*egress.usage)


POLL_INTERVAL = 0.5  # seconds between asking again for a whole reply not ready yet


async def _polled(request: LaneRequest, adapter: Adapter, reach: Reach, egress: Egress,
                  raw: bytes, timeouts: Timeouts) -> bytes:
    """A whole reply that is not ready yet (a Replicate prediction still processing after
    its Prefer: wait): asked again where ``egress.follow`` says, every POLL_INTERVAL, for
    at most the first-byte timeout; then the egress judges what it has."""
    deadline = time.monotonic() + timeouts.first_byte
    while (nxt := _guarded(egress.follow, raw)) is not None and time.monotonic() < deadline:
        await asyncio.sleep(POLL_INTERVAL)
        resp = await _checked(request, adapter, reach, nxt, egress, timeouts)
        try:
            raw = await _body(resp, reach, timeouts)
        finally:
            resp.release()
    return raw


def _cancel_upstream(app: web.Application, adapter: Adapter, reach: Reach, egress: Egress,
                     timeouts: Timeouts) -> None:
    """The client left: the egress's cancel request, if its API has one, sent in the
    background (the handler itself is being cancelled)."""
    cancel = getattr(egress, "cancel", None)
    out = cancel() if cancel is not None else None
    if out is None:
        return

    async def send_cancel() -> None:
        try:
            resp = await open_native(app, adapter, reach, out, timeouts, "cancel")
            await resp.read_all()
            resp.release()
            log.info("upstream_cancelled", backend=reach.name, status=resp.status)
        except (UpstreamFailure, *REPLY_ERRORS) as exc:
            log.warning("upstream_cancel_failed", backend=reach.name, error=repr(exc))

    spawn(send_cancel(), name=f"cancel:{reach.name}")


def _guarded(fn, *args):  # type: ignore[no-untyped-def]
    """A pure translation step; whatever it raises is the backend's reply's fault (an
    error reply inside a 2xx stream, Refused, is kept as the reply it stands for)."""
    try:
        return fn(*args)
    except Refused:
        raise
    except Exception as exc:  # an egress or translator: bytes in, bytes out, no I/O
        raise _Unreadable(f"{type(exc).__name__}: {exc}") from exc


async def _stream(resp: client.Response, egress: Egress, out: Outbound, reply: _Reply,
                  reach: Reach, timeouts: Timeouts) -> str:
    """The native stream cut into frames, each through the egress, the OpenAI events
    to the client as they come. Returns the outcome."""
    cutter = frames(out.framing)
    pending: list[bytes] = []
    feed = egress.feed
    try:
        while not egress.done:
            chunk = await resp.read_chunk()
            if not chunk:
                pending.extend(_fed(egress, _guarded(cutter.close)))
                break
            for frame in _guarded(cutter.feed, chunk):
                pending.extend(_guarded(feed, frame))
                if egress.done:
                    break
            if pending:
                await reply.write(pending)
                pending.clear()
        # json: the one frame was the reply; ends_with_body: an API whose stream has no
        # end marker of its own (KServe's generate_stream), so its end is the end.
        if egress.done or out.framing == "json" or getattr(egress, "ends_with_body", False):
            await reply.write([*pending, *_guarded(egress.finish)], end=True)
            return "ok"
        await reply.write(pending)
        if reply.first_at is None:  # nothing reached the client: another backend may answer
            raise UpstreamFailure.of(reach.state.id, "closed", 502,
                                     f"backend {reach.name} ended its stream before any event")
        await reply.cut(f"backend {reach.name} ended the reply early")
        return "error"
    except REPLY_ERRORS as exc:
        if reply.first_at is None:  # nothing sent yet: another backend may answer
            raise upstream_failure(exc, Target(reach.state, reach.url), timeouts,
                                   "stream") from None
        log.warning("upstream_failed_mid_stream", backend=reach.name, error=repr(exc))
        await reply.cut(f"backend {reach.name} failed mid-reply: {type(exc).__name__}",
                        "upstream_timeout" if isinstance(exc, TimeoutError) else
                        "upstream_error")
        return "error"
    except Refused as exc:  # the stream's first event was an error: it is the reply
        if reply.first_at is None:
            raise UpstreamFailure(reach.state.id, "status", exc.status, exc.body) from None
        await reply.cut(f"backend {reach.name} failed mid-reply: HTTP {exc.status}")
        return "error"
    except _Unreadable as exc:
        if reply.first_at is None:
            raise
        log.warning("unreadable_native_stream", backend=reach.name, error=str(exc))
        await reply.cut(f"backend {reach.name} sent a stream eldric cannot read ({exc})")
        return "error"
    except ConnectionError:  # the client's side: it went away
        _client_left(reply.request, reach.state)
        return "cancelled"


def _fed(egress: Egress, frames_left: list[bytes]) -> list[bytes]:
    events: list[bytes] = []
    for frame in frames_left:
        if egress.done:
            break
        events.extend(_guarded(egress.feed, frame))
    return events


class _Reply:
    """What the client gets: a whole JSON reply, or a stream started at its first
    bytes (so a failure before them can still fail over) on the request's lane, through
    the client API's translator where there is one."""

    __slots__ = ("request", "reach", "translate", "onward", "tap", "headers", "sink",
                 "first_at")

    def __init__(self, request: LaneRequest, reach: Reach, translate: Translator | None,
                 keep: Tap | None, extra: Mapping[str, str] | None) -> None:
        self.request, self.reach, self.translate = request, reach, translate
        self.onward = Translating(translate, keep) if translate is not None else None
        self.tap = EventSplitter(keep) if keep is not None and translate is None else None
        self.headers = [(b"X-Request-ID", request[keys.HOP].request_id.encode()),
                        *encode_headers(extra or {})]
        self.sink: Sink | None = None
        self.first_at: float | None = None

    @property
    def result(self) -> Answer:
        assert self.sink is not None, "a stream's reply is started before it is returned"
        return self.sink.result

    def whole(self, body: bytes) -> Answer:
        return self.request[keys.HOP].lane.reply(
            self.request, 200, [(b"Content-Type", _JSON), *self.headers], body)

    async def write(self, events: list[bytes], end: bool = False) -> None:
        """OpenAI chunk events (each with its blank line) to the client."""
        data = b"".join(events)
        if self.onward is not None:
            data = _guarded(self.onward.feed, data) + (
                _guarded(self.onward.close) if end else b"")
        elif self.tap is not None:
            self.tap.feed(data)
            if end:
                self.tap.close()
        if data or end:
            sink = await self._start()
            if data:
                await sink.write(data)
            if end:
                await sink.end()

    async def cut(self, message: str, code: str = "upstream_error") -> None:
        """The backend failed after the first byte: the client API's one error event."""
        if self.translate is not None:
            event = self.translate.cut(502, message, code)
        else:
            event = dialect.of_path(self.request.path).stream_error(502, message, code)
        sink = await self._start()
        await sink.write(event)
        await sink.end()

    async def _start(self) -> Sink:
        if self.sink is not None:
            return self.sink
        media = (self.translate.media_type if self.translate is not None
                 else "text/event-stream")
        sink = self.sink = self.request[keys.HOP].lane.sink(self.request, 200, [
            (b"Content-Type", media.encode()), (b"Cache-Control", b"no-cache"),
            *self.headers], None)
        await sink.start()
        self.first_at = time.perf_counter()
        return sink


# ---------------------------------------------------------------- one native request


async def _checked(request: LaneRequest, adapter: Adapter, reach: Reach, out: Outbound,
                   egress: Egress, timeouts: Timeouts) -> client.Response:
    """The request sent and its reply's head; an error reply as the egress maps it."""
    resp = await open_native(request.app, adapter, reach, out, timeouts,
                             request[keys.HOP].request_id)
    if resp.status < 400:
        return resp
    try:
        raw = await _read_bounded(resp, _ERROR_BODY_LIMIT)
    finally:
        resp.close()
    try:
        status, err = egress.error(resp.status, raw)
    except Exception as exc:  # an error body the egress cannot read: the shape kept
        log.warning("unreadable_native_error", backend=reach.name, error=repr(exc))
        status, err = resp.status, normalise(resp.status, raw, reach.name)
    if resp.status in (401, 403) or b'"backend_auth_failed"' in err:
        # a 401/403, or the API's own way of refusing the key (Google's 400
        # API_KEY_INVALID): refused, so the cloud role shows it (auth_failed)
        raise KeyRefused(reach, resp.status, message_of(err)[:300])
    failure = UpstreamFailure(reach.state.id, "status", status, err)
    failure.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers
                       if k.lower() == b"retry-after"]
    later = getattr(egress, "retry_after", None)  # an API that says when in its body
    if not failure.headers and status in (429, 503) and later is not None:
        with contextlib.suppress(Exception):  # an unreadable hint is no hint
            if (after := later(raw)) is not None:
                failure.headers = [("Retry-After", after)]
    raise failure


async def open_native(app: web.Application, adapter: Adapter, reach: Reach, out: Outbound,
                      timeouts: Timeouts, request_id: str) -> client.Response:
    """Send one native request (signed by the adapter's scheme) on the core's pool;
    its reply once the head is here. UpstreamFailure: no connection, no reply in time."""
    url = out.url or reach.url + out.path
    full = f"{url}?{out.query}" if out.query else url
    parts = urlsplit(full)
    if out.from_reply and not _trusted(parts, reach.url, adapter.reply_hosts):
        # a reply naming another host is not followed: the backend's key would go there
        log.warning("untrusted_reply_url", backend=reach.name, host=parts.netloc)
        raise UpstreamFailure(reach.state.id, "status", 502, error_json(
            502, f"backend {reach.name} named a URL on another host ({parts.scheme}://"
            f"{parts.netloc}) in its reply: not followed", code="upstream_error"))
    base = f"{parts.scheme}://{parts.netloc}"
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    # eldric's own User-Agent, as its aiohttp session sends (a provider may refuse none)
    headers = {"User-Agent": _USER_AGENT, **reach.extra_headers, **out.headers}
    if out.body and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    if adapter.ready is not None:
        # credentials fetched first (a Google token): bounded like a connection, since
        # their library's own timeout is long (google-auth's 120 s) and a stalled token
        # endpoint must not hang the request or the probe
        try:
            await asyncio.wait_for(adapter.ready(reach), timeouts.connect)
        except TimeoutError:
            raise UpstreamFailure(reach.state.id, "connect", 504, error_json(
                504, f"backend {reach.name}: its credentials were not ready within "
                f"{timeouts.connect:g} s", code="upstream_timeout")) from None
    headers.update(adapter.sign(reach, out.method, full, headers, out.body))
    block = upstream_header_block((), request_id, headers)
    try:
        return await app[keys.UPSTREAM].request(
            out.method, base, target, block, out.body, connect_timeout=timeouts.connect,
            first_byte_timeout=timeouts.first_byte, idle_timeout=timeouts.idle)
    except OSError as exc:  # ReplyTimeout and ConnectTimeout are ones too
        raise upstream_failure(exc, Target(reach.state, base), timeouts, "open") from None


def _trusted(parts, base: str, hosts: tuple[str, ...]) -> bool:  # type: ignore[no-untyped-def]
    """Whether a URL read from a backend's reply may be sent its credentials: the
    backend's own origin, or https to one of the adapter's hosts ("h" exactly, ".d" a
    subdomain of d)."""
    own = urlsplit(base)
    if (parts.scheme, parts.netloc.lower()) == (own.scheme, own.netloc.lower()):
        return True
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and bool(host) and any(
        host.endswith(h) if h.startswith(".") else host == h for h in hosts)


async def _body(resp: client.Response, reach: Reach, timeouts: Timeouts) -> bytes:
    try:
        return await resp.read_all()
    except REPLY_ERRORS as exc:
        raise upstream_failure(exc, Target(reach.state, reach.url), timeouts,
                               "body") from None


# ---------------------------------------------------------------- the probe


# A model list's answers that say only "no list here" (the request itself is fine).
_NO_LIST = (404, 405, 501)


def _none(reach: Reach) -> None:
    return None


@dataclasses.dataclass
class Probed:
    """What a native backend's probe found: its HTTP status (0: no answer), the model
    list (the adapter's, or the configured ``models`` option where the API has none),
    and what went wrong, if anything."""

    status: int
    models: list[str] | None = None
    error: str | None = None


async def probe(app: web.Application, adapter: Adapter, reach: Reach,
                timeout: float) -> Probed:
    """The adapter's model list (signed like any request); where the API has none, its
    health request, and the configured ``models`` option is the list; with neither, the
    option is served as it is (nothing to ask)."""
    out = adapter.models(reach)
    listed = out is not None
    if out is None:
        out = adapter.health(reach)
    configured = [str(m) for m in reach.options.get("models") or []]
    if out is None:
        return Probed(200, configured)
    waits = Timeouts(connect=timeout, first_byte=timeout, idle=timeout)
    try:
        resp = await open_native(app, adapter, reach, out, waits, "probe")
        try:
            raw = await resp.read_all()
        finally:
            resp.release()
    except (UpstreamFailure, *REPLY_ERRORS) as exc:
        return Probed(0, error=f"unreachable: {getattr(exc, 'message', type(exc).__name__)}")
    if listed and resp.status in _NO_LIST:
        # The backend answers, its model list is just not there (an older server, a list
        # extension turned off): its health request decides, the configured list is served.
        if adapter.health(reach) is not None:
            found = await probe(app, dataclasses.replace(adapter, models=_none), reach,
                                timeout)
            return Probed(found.status, found.models, found.error or (
                f"model list answered HTTP {resp.status}" if not configured else None))
        return Probed(200, configured, None if configured else
                      f"model list answered HTTP {resp.status}; no `models` option")
    if resp.status != 200:
        if adapter.refused(resp.status, raw):  # 401: the callers' "key refused"
            return Probed(401, error=f"its key is refused (HTTP {resp.status} from its "
                                     f"{'model list' if listed else 'health check'})")
        return Probed(resp.status, error=f"{'model list' if listed else 'health check'} "
                                         f"answered HTTP {resp.status}")
    if not listed:
        return Probed(200, configured)
    try:
        return Probed(200, adapter.parse_models(raw))
    except Exception as exc:  # the API's parser: whatever it cannot read
        return Probed(200, error=f"unreadable model list: {type(exc).__name__}: {exc}")
