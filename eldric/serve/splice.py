"""With --processes N (eldric.processes): a child's connection whose request is not a
fast-lane route is spliced, byte for byte, to the primary over a private unix socket, and
the primary's end of that socket gives the client's address back to its app.

The child writes a PROXY protocol v1 line first (HAProxy's text header: `PROXY TCP4 src
dst sport dport\\r\\n`, at most 107 bytes, `PROXY UNKNOWN\\r\\n` when the addresses are not
IP), then the bytes it had read, then relays both ways until either side closes. The
primary reads that line on its private listener (`proxied`) and answers the request as if
the client had connected to it: the peer address (the edge's per-address rules, the
access log) and, where the role listens with TLS, `https` (the child terminated TLS).
A keep-alive connection once spliced stays spliced: the child does not parse what follows.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable
from typing import Any

import structlog

from eldric.errors import error_json
from eldric.exchange import Reply
from eldric.serve.reply import whole
from eldric.tasks import spawn

log = structlog.get_logger("eldric.serve")

MAX_PROXY_LINE = 107  # the v1 header's longest form, CRLF included
# Bytes buffered from one side while the other cannot take them: then that side stops
# being read (the same back-pressure a direct connection has).
_HIGH_WATER = 256 * 1024


def proxy_line(transport: asyncio.BaseTransport) -> bytes:
    """The PROXY v1 header for the client on `transport` (TCP4/TCP6, else UNKNOWN)."""
    peer = transport.get_extra_info("peername")
    local = transport.get_extra_info("sockname")
    if isinstance(peer, tuple) and isinstance(local, tuple):
        family = "TCP6" if ":" in peer[0] else "TCP4"
        return f"PROXY {family} {peer[0]} {local[0]} {peer[1]} {local[1]}\r\n".encode()
    return b"PROXY UNKNOWN\r\n"


def parse_proxy_line(line: bytes) -> tuple[tuple[str, int], tuple[str, int]] | None:
    """(peer, local) from a v1 header line (CRLF stripped); None for UNKNOWN. ValueError
    for anything that is not a v1 header."""
    parts = line.decode("ascii").split(" ")
    if parts[:1] != ["PROXY"] or len(parts) < 2:
        raise ValueError("not a PROXY v1 header")
    if parts[1] == "UNKNOWN":
        return None
    if parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ValueError("not a PROXY v1 header")
    src, dst = ipaddress.ip_address(parts[2]), ipaddress.ip_address(parts[3])
    return (str(src), int(parts[4])), (str(dst), int(parts[5]))


class Peer:
    """The private socket's transport, but saying what the client's connection says: its
    peer and local address and (the role listens with TLS) an SSL context, so aiohttp's
    request.remote / request.secure and the lane's peer are the client's."""

    __slots__ = ("_transport", "_extra")

    def __init__(self, transport: asyncio.Transport, extra: dict[str, Any]) -> None:
        self._transport = transport
        self._extra = extra

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Proxied(asyncio.Protocol):
    """The primary's private listener: read the PROXY line, then the connection is an
    ordinary one of the role's (`make()` makes the fast lane's protocol for it)."""

    def __init__(self, make: Callable[[], asyncio.Protocol],
                 ssl_context: ssl.SSLContext | None) -> None:
        self.make = make
        self.ssl_context = ssl_context
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n")
        if end < 0:
            if len(self.buf) > MAX_PROXY_LINE and self.transport is not None:
                self.transport.abort()  # only our children connect here
            return
        transport = self.transport
        assert transport is not None
        try:
            addrs = parse_proxy_line(bytes(self.buf[:end]))
        except (ValueError, UnicodeDecodeError):
            log.warning("splice_bad_proxy_line")
            transport.abort()
            return
        extra: dict[str, Any] = {"socket": None}  # no TCP options to set on it
        if addrs is not None:
            extra["peername"], extra["sockname"] = addrs
        if self.ssl_context is not None:
            extra["sslcontext"] = self.ssl_context
        rest = bytes(self.buf[end + 2:])
        self.buf.clear()
        proto = self.make()
        peer = Peer(transport, extra)
        transport.set_protocol(proto)
        proto.connection_made(peer)  # type: ignore[arg-type]
        if rest:
            proto.data_received(rest)


class _Side(asyncio.Protocol):
    """One end of a splice; `other` is the transport bytes go on to."""

    def __init__(self, splice: Splice) -> None:
        self.splice = splice
        self.transport: asyncio.Transport | None = None
        self.other: _Side | None = None
        self.eof = False  # this side sent its FIN

    def data_received(self, data: bytes) -> None:
        other = self.other
        if not self.splice.ready or other is None or other.transport is None:
            # the primary is not connected, or what came first (the PROXY line, the bytes
            # the lane had read) is not written yet: after those, in order
            self.splice.pending += data
            if len(self.splice.pending) > _HIGH_WATER and self.transport is not None:
                self.transport.pause_reading()
            return
        other.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        other = self.other
        if self.splice.ready and other is not None and other.transport is not None \
                and not other.eof and other.transport.can_write_eof():
            other.transport.write_eof()  # a half-close goes on as one
            return True
        self.splice.close()  # both halves are shut now (or cannot be half-shut): done
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.splice.close()

    # the other side's buffer is full: stop reading this one until it drains
    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()


class _Primary(_Side):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]


class Splice:
    """One client connection relayed to the primary's private socket at `path`."""

    def __init__(self, path: str, splices: set[Splice]) -> None:
        self.path = path
        self.splices = splices
        self.pending = bytearray()
        self.client = _Side(self)
        self.primary = _Primary(self)
        self.client.other, self.primary.other = self.primary, self.client
        self.ready = False  # pending has gone to the primary: bytes pass straight on
        self.closed = False

    def start(self, transport: asyncio.Transport, data: bytes) -> None:
        self.splices.add(self)
        self.client.transport = transport
        transport.set_protocol(self.client)
        self.pending += proxy_line(transport) + data
        spawn(self._connect(), name="splice")  # held: a bare task may be collected mid-way

    async def _connect(self) -> None:
        try:
            await asyncio.get_running_loop().create_unix_connection(lambda: self.primary,
                                                                    self.path)
        except OSError as exc:  # the primary is stopping (or gone): say so, once
            log.warning("splice_failed", path=self.path, error=str(exc))
            client = self.client.transport
            if client is not None:
                client.write(whole(Reply(503, [(b"Content-Type", b"application/json")],
                                         error_json(503, "eldric is restarting: try again",
                                                    code="unavailable")), True))
            self.close()
            return
        if self.closed:
            self.primary.transport.close()  # type: ignore[union-attr]
            return
        self.primary.transport.write(bytes(self.pending))  # type: ignore[union-attr]
        self.pending.clear()
        self.ready = True
        if self.client.transport is not None:
            self.client.transport.resume_reading()

    def close(self) -> None:
        """Either side closed: close the other (what it was sent still goes out)."""
        if self.closed:
            return
        self.closed = True
        self.splices.discard(self)
        for side in (self.client, self.primary):
            if side.transport is not None:
                side.transport.close()

    def abort(self) -> None:
        for side in (self.client, self.primary):
            if side.transport is not None:
                side.transport.abort()
        self.close()


def splicer(path: str, splices: set[Splice]) -> Callable[[asyncio.Transport, bytes], None]:
    """The fast lane's hand-over in a child: to the primary at `path`, not to aiohttp."""
    return lambda transport, data: Splice(path, splices).start(transport, data)
