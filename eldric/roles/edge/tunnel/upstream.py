"""A tunnel as the forwarding core's upstream: forward() (eldric.stream.forward) sends
the request here instead of over a connection, and reads the worker's reply from here.

So a request through a tunnel gets everything forward() gives any upstream: a failure
before the first byte is a retryable UpstreamFailure (503: the router fails over), a
reply broken off mid-stream ends with the core's SSE error event (or a cut), the caller
leaving closes the reply (here: the worker's upload is answered 409 and it stops), and
the first-byte and idle timeouts hold.
"""

from __future__ import annotations

import asyncio
import base64
import secrets

from eldric.errors import UpstreamFailure, error_json
from eldric.roles.edge.tunnel.registry import Pending, RawPairs, Tunnel, Tunnels, gone
from eldric.stream import client
from eldric.stream.headers import upstream_header_block
from eldric.wire.tunnel import TunnelRequest

_TRACE_CONTEXT = ("traceparent", "tracestate")
RETRY_AFTER = "1"  # seconds: a full queue drains at the worker's pace, soon


def header_pairs(block: bytes) -> list[tuple[str, str]]:
    """The header lines forward() would send upstream, as the (name, value) pairs a
    TunnelRequest carries (latin-1: HTTP header bytes, each byte kept)."""
    pairs = []
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            pairs.append((name.strip(), value.strip()))
    return pairs


class TunnelUpstream:
    """What forward() calls as it would call the connection pool (upstream=)."""

    def __init__(self, tunnels: Tunnels, tunnel: Tunnel,
                 headers: list[tuple[str, str]] | None = None, traced: bool = False) -> None:
        self.tunnels = tunnels
        self.tunnel = tunnel
        self.headers = headers  # an envelope's own headers, instead of the caller's
        self.traced = traced  # this hop's span names the call: its traceparent goes on

    async def request(self, method: str, base_url: str, target: str, header_block: bytes,
                      body: bytes, *, connect_timeout: float, first_byte_timeout: float,
                      idle_timeout: float) -> TunnelReply:
        tunnel = self.tunnel
        if self.tunnels.by_id.get(tunnel.id) is not tunnel:
            raise gone(tunnel.id, "is not connected")
        if self.tunnels.stopping:  # no worker polls a stopping edge (Tunnels.stop)
            raise gone(tunnel.id, "is on an edge that is stopping")
        if len(tunnel.queue) >= self.tunnels.max_queued:
            busy = UpstreamFailure(tunnel.upstream.id, "status", 503, error_json(
                503, f"tunnel {tunnel.id} has {len(tunnel.queue)} requests waiting for its "
                "worker (--tunnel-max-queued)", code="tunnel_busy"))
            busy.headers = [("Retry-After", RETRY_AFTER)]
            raise busy
        headers = header_pairs(header_block)
        if self.headers is not None:  # an envelope's, crossing the hop as a caller's do
            rid = next((v for k, v in headers if k.lower() == "x-request-id"), "")
            own = self.headers
            if self.traced:  # the trace context forward() made, not the envelope's
                trace = [(k, v) for k, v in headers if k.lower() in _TRACE_CONTEXT]
                own = [(k, v) for k, v in own if k.lower() not in _TRACE_CONTEXT] + trace
            headers = header_pairs(upstream_header_block(
                [(k.encode("latin-1"), v.encode("latin-1")) for k, v in own], rid))
        req = TunnelRequest(id=secrets.token_hex(8), method=method, path=target,
                            headers=headers, body=base64.b64encode(body).decode("ascii"))
        pending = Pending(req, asyncio.get_running_loop().create_future())
        tunnel.queue.put(pending)
        tunnel.requests += 1
        try:
            async with asyncio.timeout(first_byte_timeout):
                status, raw = await pending.head
        except BaseException as exc:
            # Left in the queue, the worker would run it for nobody; taken by a poll, its
            # upload (if it ever comes) is answered 409.
            tunnel.queue.remove(pending)
            tunnel.in_flight.pop(pending.id, None)
            pending.chunks.close()
            if isinstance(exc, TimeoutError):
                raise client.ReplyTimeout("first_byte", first_byte_timeout) from None
            raise
        return TunnelReply(tunnel, pending, status, raw, idle_timeout)


class TunnelReply:
    """The worker's reply as forward() reads an upstream's (eldric.stream.client.Response)."""

    __slots__ = ("status", "headers", "content_type", "content_length", "_tunnel", "_pending",
                 "_idle")

    def __init__(self, tunnel: Tunnel, pending: Pending, status: int, headers: RawPairs,
                 idle: float) -> None:
        self.status = status
        self.headers = headers
        self.content_type = b""
        self.content_length: int | None = None
        for name, value in headers:
            low = name.lower()
            if low == b"content-type":
                self.content_type = value.split(b";", 1)[0].strip().lower()
            elif low == b"content-length" and value.strip().isdigit():
                self.content_length = int(value)
        self._tunnel = tunnel
        self._pending = pending
        self._idle = idle

    async def read_chunk(self) -> bytes:
        try:
            async with asyncio.timeout(self._idle):
                return await self._pending.chunks.get()
        except TimeoutError:
            raise client.ReplyTimeout("idle", self._idle) from None

    # every read_chunk() joined: the connection's own, which asks only read_chunk()
    read_all = client.Response.read_all
    read_available = read_chunk  # one relayed chunk at a time: what the tunnel framed

    @property
    def complete(self) -> bool:
        """Read to the end (forward() sends a reply's last bytes with its end when it
        knows they are the last; through the tunnel it learns that from the end itself)."""
        return self._pending.chunks.drained

    def release(self) -> None:
        self.close()

    def close(self) -> None:
        """Done with the reply: if it was not read to the end (the caller left, the relay
        failed), the worker's upload is told to stop."""
        if not self._pending.chunks.drained:
            self._pending.chunks.close()
        self._pending.state = "done"
        self._tunnel.in_flight.pop(self._pending.id, None)
