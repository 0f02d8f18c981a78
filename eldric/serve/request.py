"""FastRequest: the part of aiohttp's web.Request that eldric's inference handlers use,
and the fast lane's side of eldric.exchange (its sink, its Lane).

A handler registered with fast_post() runs on both servers: aiohttp gives it a
web.Request (on a connection aiohttp owns), the fast lane a FastRequest. So this class
offers exactly what eldric.exchange.LaneRequest names (those handlers are typed with it);
anything else is a type error, and an AttributeError in a test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from eldric.exchange import RawPairs, Reply, Streamed
from eldric.serve.reply import head_bytes, raw_block

if TYPE_CHECKING:
    from aiohttp import web

    from eldric.serve.protocol import FastProtocol


class FastRequest:
    __slots__ = ("app", "method", "path", "query_string", "raw_headers", "body",
                 "_proto", "_store", "_headers", "_cookies")

    def __init__(self, proto: FastProtocol, app: web.Application, path: str,
                 query_string: str, raw_headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.method = "POST"  # the only method the fast lane takes
        self.path = path  # exactly a registered route, so it is the metrics label too
        self.query_string = query_string
        self.raw_headers = raw_headers  # as aiohttp's: (name, value) bytes pairs
        self.body = b""
        self._proto = proto
        self._store: dict[Any, Any] = {}
        self._headers: RawHeaders | None = None
        self._cookies: dict[str, str] | None = None

    # request-scoped storage, like web.Request's
    def __getitem__(self, key: Any) -> Any:
        return self._store[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._store[key] = value

    def get(self, key: Any, default: Any = None) -> Any:
        return self._store.get(key, default)

    @property
    def headers(self) -> RawHeaders:
        if self._headers is None:
            self._headers = RawHeaders(self.raw_headers)
        return self._headers

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(self.headers.get("Cookie", ""))
            except Exception:  # noqa: BLE001 - a broken Cookie header is no cookie
                pass
            self._cookies = {k: m.value for k, m in jar.items()}
        return self._cookies

    @property
    def remote(self) -> str | None:
        peer = self._proto.transport.get_extra_info("peername") if self._proto.transport else None
        if isinstance(peer, (list, tuple)) and peer:
            return str(peer[0])
        return None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")  # as aiohttp's parser decodes them


class RawHeaders(Mapping[str, str]):
    """The request headers, read-only and case-insensitive like aiohttp's, looked up in
    the raw pairs: the handlers ask for two or three names, so building a multidict of
    all of them would cost more than it saves."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def getall(self, name: str) -> list[str]:
        want = name.lower().encode("latin-1")
        n = len(want)
        return [_text(v) for k, v in self._raw if len(k) == n and k.lower() == want]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        want = name.lower().encode("latin-1")
        n = len(want)
        for k, v in self._raw:
            if len(k) == n and k.lower() == want:
                return _text(v)
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (_text(k) for k, _ in self._raw)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(_text(k), _text(v)) for k, v in self._raw]  # repeated names kept

    def __len__(self) -> int:
        return len(self._raw)


class FastSink:
    """A streamed reply on the fast lane: head on the first write, then the body as it
    comes, chunked unless the length is known. Same methods as forward()'s aiohttp sink."""

    __slots__ = ("_proto", "status", "_headers", "_length", "_chunked", "_begun")

    def __init__(self, proto: FastProtocol, status: int, headers: RawPairs,
                 length: int | None) -> None:
        self._proto = proto
        self.status = status
        self._headers = headers
        self._length = length
        self._chunked = length is None
        self._begun = False

    def _head(self) -> bytes:
        length = self._length
        framing = (b"Transfer-Encoding: chunked\r\n" if length is None
                   else b"Content-Length: %d\r\n" % length)
        self._proto.started = self._begun = True
        return head_bytes(self.status, raw_block(self._headers), self._proto.closing, framing)

    async def start(self, first: bytes = b"") -> None:
        head = self._head()
        await self._proto.send(head + self._framed(first) if first else head)

    def _framed(self, chunk: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(chunk), chunk) if self._chunked else chunk

    async def write(self, chunk: bytes) -> None:
        await self._proto.send(self._framed(chunk))

    async def end(self, last: bytes = b"") -> None:
        """The body's last bytes and its end; on a reply not started, its head too: a
        reply that arrived whole before its head went out is one write."""
        data = self._framed(last) if last else b""
        if self._chunked:
            data += b"0\r\n\r\n"
        if not self._begun:
            data = self._head() + data
        if data:
            await self._proto.send(data)

    def abort(self) -> None:
        """A reply cut mid-body: drop the connection so the client sees it incomplete."""
        self._proto.abort()

    @property
    def result(self) -> Streamed:
        return Streamed(self.status)


class _Fast:
    """The fast lane's side of eldric.exchange.Lane."""

    __slots__ = ()
    fast = True

    def reply(self, request: FastRequest, status: int, headers: RawPairs,
              body: bytes) -> Reply:
        return Reply(status, headers, body)

    def sink(self, request: FastRequest, status: int, headers: RawPairs,
             length: int | None) -> FastSink:
        return FastSink(request._proto, status, headers, length)

    def route(self, request: FastRequest) -> str:
        return request.path  # the lane takes registered paths only


FAST = _Fast()
