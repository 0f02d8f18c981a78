"""The router's workers: static ones and those synced from the controller, with state.

A worker's health, in-flight count, latency and reported load live in its bus
UpstreamState; this module adds what only the router cares about (tags, type, source,
its concurrency cap) and the waiting room for when every candidate is full.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eldric.bus import Bus, UpstreamState
from eldric.stream import Target
from eldric.wire.cluster import INFERENCE_TYPES, serves_path
from eldric.wire.tunnel import forward_base, is_tunnel


@dataclass(eq=False)
class Worker:
    id: str
    url: str  # as registered or configured: http://…, or tunnel://EDGE/ID
    state: UpstreamState
    # Where its requests and health checks go, with the headers that hop needs: its URL,
    # or for a tunnel:// worker the edge's forward endpoint with the router's edge key.
    target: Target
    tags: list[str] = field(default_factory=list)
    worker_type: str = "inference"
    from_controller: bool = False
    static: bool = False
    reported_max_concurrency: int | None = None
    paths: list[str] | None = None  # as its /health advertises; None: any path
    # The models the controller last listed for it: when they change (a model pulled or
    # deleted there), the router checks the worker at once rather than at its next probe.
    registered_models: list[str] | None = None
    # After max_failures failed requests in a row the worker is ranked last until then
    # (time.monotonic()): maybe broken, maybe fed bad requests; its health check decides.
    suspect_until: float = 0.0
    batch_active: int = 0  # batch-priority requests in flight on it (counted in state.active)
    # How many router processes share this worker's cap (--processes): each holds its
    # part, so together they keep to the cap (docs/design-notes.md, "Every core").
    share: int = 1

    def serves(self, model: str) -> bool:
        # A worker that lists no models is a plain OpenAI-compatible upstream: any model.
        return not self.state.models or model in self.state.models

    def serves_path(self, path: str) -> bool:
        return serves_path(self.paths, path)

    def capacity(self, default: int | None) -> int | None:
        """This process's in-flight cap on the worker (None: no cap): its part of the
        worker's own (reported, else --max-concurrency), rounded up."""
        cap = self.reported_max_concurrency or default
        if cap is None or self.share == 1:
            return cap
        return -(-cap // self.share)

    def has_room(self, default: int | None) -> bool:
        cap = self.capacity(default)
        return cap is None or self.state.active < cap


    def idle_for_batch(self, default: int | None, slots: int) -> bool:
        """Room for a batch-priority request: under its batch slots and with room; with no
        cap known, no interactive request in flight on it. So an interactive request
        arriving later waits behind at most `slots` batch requests (one by default)."""
        if self.batch_active >= slots:
            return False
        cap = self.capacity(default)
        if cap is None:
            return self.state.active - self.batch_active <= 0
        return self.state.active < cap


class WorkerPool:
    """The router's workers by id (not the upstream client's connection pool)."""

    def __init__(self, bus: Bus, role: str, tunnel_key: str | None = None, share: int = 1):
        self.bus = bus
        self.role = role
        self.share = share  # router processes sharing each worker's cap
        self.tunnel_key = tunnel_key  # an edge key of scope "cluster", for tunnel:// workers
        self.workers: dict[str, Worker] = {}
        self.room = asyncio.Condition()  # notified whenever a request ends
        self.waiting = 0  # requests waiting for room (the Failover notifies when > 0) ...
        self.batch_waiting = 0  # ... of which batch-priority ones (for idle capacity)

    def add(self, id: str, url: str, *, tags: list[str] | None = None,
            worker_type: str = "inference", from_controller: bool = False,
            static: bool = False) -> Worker:
        url = url.rstrip("/")
        base, headers = self.reach(url)
        w = self.workers.get(id)
        if w is None:
            state = self.bus.upstream(id, url, role=self.role)
            w = self.workers[id] = Worker(id=id, url=url, state=state,
                                          target=Target(state, base, headers),
                                          share=self.share)
        elif w.url != url:
            w.target = Target(w.state, base, headers)
        w.url = w.state.url = url
        w.tags = list(tags or [])
        w.worker_type = worker_type
        w.from_controller = w.from_controller or from_controller
        w.static = w.static or static
        return w

    def reach(self, url: str) -> tuple[str, dict[str, str] | None]:
        """Where a worker at `url` is called, and with what headers. A tunnel:// worker is
        behind the edge (eldric.wire.tunnel): everything the router would send it, health
        checks included, goes to the edge's forward endpoint with the router's key, so
        strategies, health and failover treat it as any worker. ValueError: a tunnel URL
        that names no tunnel."""
        if not is_tunnel(url):
            return url, None
        base = forward_base(url)
        return base, {"Authorization": f"Bearer {self.tunnel_key}"} if self.tunnel_key else None

    def remove(self, id: str) -> None:
        if self.workers.pop(id, None) is not None:
            self.bus.remove_upstream(id)

    def routable(self) -> list[Worker]:
        return [w for w in self.workers.values()
                if w.state.healthy and w.worker_type in INFERENCE_TYPES]

    def models(self) -> list[str]:
        seen: dict[str, None] = {}
        for w in self.routable():
            for m in w.state.models:
                seen.setdefault(m, None)
        return list(seen)

    def interactive_waiting(self) -> int:
        return self.waiting - self.batch_waiting

    async def wait_for(self, find: Callable[[], Worker | None], deadline: float) -> Worker:
        """find()'s worker once it finds one, checked now and whenever a request ends;
        TimeoutError at `deadline` (time.monotonic())."""
        async with self.room:
            while True:
                w = find()
                if w is not None:
                    return w
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self.room.wait(), remaining)

    async def notify(self) -> None:
        async with self.room:
            self.room.notify_all()
