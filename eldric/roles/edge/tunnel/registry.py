"""The edge's tunnels: who holds each, its queue, the requests it is running.

In memory: a tunnel lives on the edge its worker connected to. After an edge restart
the worker's next poll gets 404 and it connects again with the same id, which the edge
gives back to the same client (an id another client holds is refused).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from eldric.bus import Bus, UpstreamState
from eldric.errors import EldricError, NotFound, UpstreamFailure, error_json
from eldric.roles.edge.tunnel.chunks import Chunks
from eldric.roles.edge.tunnel.queue import PollQueue
from eldric.wire.tunnel import TunnelRequest

log = structlog.get_logger("eldric.edge.tunnel")

ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ROLE = "edge-tunnel"  # the bus's role label of a tunnel's upstream state (not a role's health)

RawPairs = list[tuple[bytes, bytes]]


@dataclass(eq=False)
class Pending:
    """One request through a tunnel: queued, then sent (a poll took it), then uploading
    (the worker's reply is coming), then done."""

    request: TunnelRequest
    head: asyncio.Future[tuple[int, RawPairs]]
    chunks: Chunks = field(default_factory=Chunks)
    state: str = "queued"

    @property
    def id(self) -> str:
        return self.request.id


@dataclass(eq=False)
class Tunnel:
    id: str
    client: str
    upstream: UpstreamState
    worker_id: str | None = None
    concurrency: int = 1
    since: float = field(default_factory=time.time)
    last_poll: float = field(default_factory=time.time)  # wall clock, for the admin list
    last_poll_mono: float = field(default_factory=time.monotonic)
    requests: int = 0
    queue: PollQueue[Pending] = field(default_factory=PollQueue)
    in_flight: dict[str, Pending] = field(default_factory=dict)
    polls: dict[int, web.Request] = field(default_factory=dict)  # polls waiting now, by id()

    def touch(self) -> None:
        self.last_poll, self.last_poll_mono = time.time(), time.monotonic()

    def polling(self) -> bool:
        """A poll waits on a connection that is still open (a dead worker's poll lingers
        until its wait ends; its closed transport says the worker is gone)."""
        return any(r.transport is not None and not r.transport.is_closing() for r in self.polls.values())

    def snapshot(self) -> dict:
        return {"tunnel": self.id, "worker_id": self.worker_id, "client": self.client,
                "since": self.since, "requests": self.requests,
                "in_flight": len(self.in_flight), "queued": len(self.queue),
                "last_poll": self.last_poll, "concurrency": self.concurrency}


def gone(tunnel_id: str, why: str) -> UpstreamFailure:
    """What a request the worker never started answers: 503 before the first byte, so a
    router fails it over to another worker."""
    return UpstreamFailure(f"tunnel:{tunnel_id}", "connect", 503, error_json(
        503, f"tunnel {tunnel_id} {why}; the request did not reach the worker",
        code="tunnel_unavailable"))


class Tunnels:
    def __init__(self, bus: Bus, poll_ms: int, max_queued: int) -> None:
        self.bus = bus
        self.poll_ms = poll_ms
        self.max_queued = max_queued
        self.by_id: dict[str, Tunnel] = {}
        self.stopping = False

    def connect(self, client: str, tunnel_id: str | None, worker_id: str | None,
                concurrency: int, url: str) -> Tunnel:
        if tunnel_id is not None:
            if not ID.match(tunnel_id):
                raise EldricError("tunnel_id must be 1-64 letters, digits, _ or -", status=400,
                                  code="invalid_request", param="tunnel_id")
            held = self.by_id.get(tunnel_id)
            if held is not None and held.client != client:
                raise EldricError(f"tunnel {tunnel_id} belongs to another client", status=409,
                                  code="tunnel_id_taken", param="tunnel_id")
        else:
            tunnel_id = secrets.token_hex(8)
        tunnel = self.by_id.get(tunnel_id)
        if tunnel is None:
            up = self.bus.upstream(f"tunnel:{tunnel_id}", url, role=ROLE)
            tunnel = self.by_id[tunnel_id] = Tunnel(id=tunnel_id, client=client, upstream=up)
            log.info("tunnel_connected", tunnel=tunnel_id, client=client, worker=worker_id)
        else:
            log.info("tunnel_reconnected", tunnel=tunnel_id, client=client, worker=worker_id)
        tunnel.worker_id = worker_id or tunnel.worker_id
        tunnel.concurrency = concurrency
        tunnel.touch()
        return tunnel

    def get(self, tunnel_id: str) -> Tunnel:
        tunnel = self.by_id.get(tunnel_id)
        if tunnel is None:
            raise NotFound(f"no tunnel {tunnel_id} on this edge (it restarted, or dropped the "
                           "tunnel): connect again with the same tunnel_id",
                           code="tunnel_not_found")
        return tunnel

    def owned(self, tunnel_id: str, client: str) -> Tunnel:
        tunnel = self.get(tunnel_id)
        if tunnel.client != client:
            raise EldricError(f"tunnel {tunnel_id} belongs to another client", status=403,
                              code="tunnel_forbidden")
        return tunnel

    def drop(self, tunnel: Tunnel, why: str) -> None:
        """The tunnel goes: what waits in its queue, and what the worker took but never
        began to answer, fail with a 503 (the router fails them over); replies already
        streaming go on while the worker sends them."""
        if self.by_id.get(tunnel.id) is not tunnel:
            return
        del self.by_id[tunnel.id]
        unstarted = [p for p in tunnel.in_flight.values() if p.state == "sent"]
        for p in [*tunnel.queue.drain(), *unstarted]:
            if not p.head.done():
                p.head.set_exception(gone(tunnel.id, why))
        tunnel.queue.wake_all()
        self.bus.remove_upstream(tunnel.upstream.id)
        log.warning("tunnel_dropped", tunnel=tunnel.id, client=tunnel.client, reason=why,
                    failed=len(unstarted))

    def silent(self) -> list[Tunnel]:
        """Tunnels with no poll for 2 x the long-poll time and none waiting now."""
        horizon = time.monotonic() - 2 * self.poll_ms / 1000
        return [t for t in self.by_id.values()
                if t.last_poll_mono < horizon and not t.polling()]

    async def reap(self) -> None:
        """Drop silent tunnels, checking a few times per long-poll period."""
        every = min(max(self.poll_ms / 4000, 0.05), 5.0)
        while True:
            await asyncio.sleep(every)
            for tunnel in self.silent():
                self.drop(tunnel, f"had no poll for {2 * self.poll_ms} ms")

    def stop(self) -> None:
        """The edge is stopping: waiting polls end now (they would hold the drain), and
        what waits in a queue fails with a 503 now (no worker polls a stopping edge: it
        would wait out the grace period and be cut; the router fails it over). Replies
        already taken or streaming go on within the grace period."""
        self.stopping = True
        for tunnel in self.by_id.values():
            for p in tunnel.queue.drain():
                if not p.head.done():
                    p.head.set_exception(gone(tunnel.id, "is on an edge that is stopping"))
            tunnel.queue.wake_all()

    # ------------------------------------------------------------ metrics (read at scrape)

    def queued(self) -> int:
        return sum(len(t.queue) for t in self.by_id.values())

    def in_flight(self) -> int:
        return sum(len(t.in_flight) for t in self.by_id.values())


TUNNELS: web.AppKey[Tunnels] = web.AppKey("eldric_edge_tunnels", Tunnels)
