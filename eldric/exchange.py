"""What a handler gets and gives back, on either lane: the leaf the forwarding core, the
middleware and the fast lane all import, and which imports none of them.

- ``LaneRequest``: the part of a request both ``web.Request`` (aiohttp's) and
  ``FastRequest`` (the fast lane's) offer. A handler registered with ``fast_post()`` is
  typed with it, so one that reaches for what the lane lacks (``match_info``,
  ``content``, …) is a type error, not an AttributeError on the lane only.
- ``Reply`` (a whole reply, one write) and ``Streamed`` (a streamed one, already sent):
  what forward() returns on the fast lane where it returns web.Response/StreamResponse on
  aiohttp.
- ``Sink``: how forward() streams a reply out; ``AioSink`` is aiohttp's, the fast lane's
  is ``eldric.serve.request.FastSink``.
- ``Lane``: the one answer to "which lane is this?". The caller of the middleware knows it
  (aiohttp calls it without one: ``AIOHTTP``; the fast lane passes its own) and the
  middleware keeps it on the request's Hop; what differs between the lanes is a method
  of it, so nothing else asks.

Reply headers cross as the (name, value) bytes the upstream sent; only aiohttp's side
decodes them (``text_headers``), because aiohttp writes text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, overload

from aiohttp import web

RawPairs = list[tuple[bytes, bytes]]


class LaneRequest(Protocol):
    """What a fast-lane handler may use of its request (web.Request offers all of it)."""

    @property
    def app(self) -> web.Application: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def raw_headers(self) -> Any: ...  # (name, value) bytes pairs, as received
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def cookies(self) -> Mapping[str, str]: ...
    @property
    def remote(self) -> str | None: ...
    def __getitem__(self, key: Any) -> Any: ...  # request-scoped storage (keys.HOP)
    def __setitem__(self, key: Any, value: Any) -> None: ...
    @overload
    def get(self, key: Any, /) -> Any: ...
    @overload
    def get(self, key: Any, default: Any, /) -> Any: ...


class Reply:
    """A whole reply (status, raw headers, body) for the fast lane: no multidict, one
    write. Its head is complete as made (forward() puts X-Request-ID in it), so the
    middleware adds nothing to it: ``prepared`` says so, as it does of a sent reply."""

    __slots__ = ("status", "headers", "body")
    prepared = True

    def __init__(self, status: int, headers: RawPairs, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Streamed:
    """What forward() returns once a streamed reply has gone out on the fast lane."""

    __slots__ = ("status",)
    prepared = True

    def __init__(self, status: int) -> None:
        self.status = status


# What a handler returns, on either lane (web.Response is a StreamResponse).
Answer = web.StreamResponse | Reply | Streamed


class Sink(Protocol):
    """A streamed reply: the head goes with start(), then the body as it comes.

    start(first) sends the head and the body's first bytes in one write, end(last) the
    body's last bytes and its end in one (and the head too when start was never called):
    a relay that has them at hand saves a send each (the lane's CPU per streamed reply
    was mostly its sends)."""

    async def start(self, first: bytes = b"") -> None: ...
    async def write(self, chunk: bytes) -> None: ...
    async def end(self, last: bytes = b"") -> None: ...
    def abort(self) -> None: ...  # cut mid-body: the client must see it incomplete
    @property
    def result(self) -> Any: ...  # what the handler returns once it is sent


class Lane(Protocol):
    fast: bool  # the lane frames requests itself: POST, a Content-Length body, read whole

    def reply(self, request: Any, status: int, headers: RawPairs, body: bytes) -> Any: ...
    def sink(self, request: Any, status: int, headers: RawPairs,
             length: int | None) -> Sink: ...
    def route(self, request: Any) -> str: ...  # the route label of metrics


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")  # aiohttp writes UTF-8: these bytes go out unchanged
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # not UTF-8: aiohttp cannot send them as they came


def text_headers(headers: RawPairs) -> list[tuple[str, str]]:
    return [(_text(k), _text(v)) for k, v in headers]


def encode_headers(headers: Mapping[str, str]) -> RawPairs:
    """eldric's own reply headers (route decisions, rate limits) as a lane sends them:
    UTF-8, as aiohttp writes them, and one line each, whatever a value holds."""
    return [(k.encode(), (v if "\n" not in v and "\r" not in v
                          else v.replace("\r", " ").replace("\n", " ")).encode())
            for k, v in headers.items()]


class AioSink:
    """A streamed reply on an aiohttp connection."""

    __slots__ = ("request", "result")

    def __init__(self, request: web.Request, status: int, headers: list[tuple[str, str]],
                 length: int | None) -> None:
        self.request = request
        self.result = web.StreamResponse(status=status, headers=headers)
        if length is not None:
            self.result.content_length = length

    async def start(self, first: bytes = b"") -> None:
        await self.result.prepare(self.request)
        if first:
            await self.result.write(first)

    async def write(self, chunk: bytes) -> None:
        await self.result.write(chunk)

    async def end(self, last: bytes = b"") -> None:
        if not self.result.prepared:
            await self.result.prepare(self.request)
        await self.result.write_eof(last)

    def abort(self) -> None:
        if self.request.transport is not None:
            self.request.transport.close()


class _Aiohttp:
    """aiohttp's lane: web.Response, web.StreamResponse, its router's route names."""

    __slots__ = ()
    fast = False

    def reply(self, request: web.Request, status: int, headers: RawPairs,
              body: bytes) -> web.Response:
        return web.Response(status=status, body=body, headers=text_headers(headers))

    def sink(self, request: web.Request, status: int, headers: RawPairs,
             length: int | None) -> AioSink:
        return AioSink(request, status, text_headers(headers), length)

    def route(self, request: web.Request) -> str:
        info = request.match_info.route.resource
        return info.canonical if info is not None else "unmatched"


AIOHTTP: Lane = _Aiohttp()
