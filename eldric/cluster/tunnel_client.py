"""The NAT tunnel's far end: a member behind NAT takes its requests from the edge over its
own outbound connections (the wire: eldric.wire.tunnel; the prose: docs/tunnel.md).

It connects, keeps one long-poll outstanding per free slot (so the edge hands it only
what it can start at once), runs each request against this process's own listener
(RoleInfo.local_url: the role's handlers, both lanes, its limits and logs, exactly as for
a direct caller; nothing re-implemented here), and streams the reply back as a chunked
upload, chunk by chunk as the local server makes it. When the edge says the caller left
(409) or the upload breaks, the local request is closed at once: the local handler sees
its client leave and stops the backend (a GPU stops working for nobody).

Losing the edge (404 tunnel_not_found after an edge restart or a drop for silence,
refused or broken connections) means connecting again with the same tunnel id, with
exponential backoff and jitter from 1 s to 60 s; the id is kept in --data-dir, so a
restarted worker keeps its tunnel:// URL too. Shared by any role that could sit behind
NAT (the worker uses it; the cloud role could).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import structlog

from eldric.errors import ErrorEnvelope
from eldric.stream.headers import HOP_BY_HOP, downstream_headers
from eldric.tasks import cancel, spawn
from eldric.wire.tunnel import (HEADERS_HEADER, STATUS_HEADER, Connect, Connected, Poll,
                                TunnelRequest)

log = structlog.get_logger("eldric.tunnel")

_enc = msgspec.json.Encoder()
_connected = msgspec.json.Decoder(Connected)
_poll = msgspec.json.Decoder(Poll)
_error = msgspec.json.Decoder(ErrorEnvelope)

CALL_TIMEOUT = 10.0  # seconds: connect, disconnect
BACKOFF_FIRST = 1.0  # seconds: the first pause after the edge could not be reached
BACKOFF_MAX = 60.0
POLL_SLACK = 10.0  # seconds a poll may take beyond the edge's long-poll time
DRAIN_TIMEOUT = 5.0  # seconds running requests get to finish when the process stops
# Not handed to the local listener: this hop's framing, and the caller's credentials
# (the edge key that reached the edge is for the edge; the worker's own listener takes
# the request as from its router).
_DROP = HOP_BY_HOP | {"host", "content-length", "authorization", "x-api-key", "cookie"}


class EdgeRefused(Exception):
    """The edge answered the tunnel's call, but not with what was asked."""

    def __init__(self, what: str, status: int, message: str | None = None):
        super().__init__(f"{what} answered HTTP {status}" + (f": {message}" if message else ""))
        self.what = what
        self.status = status
        self.message = message


class Lost(Exception):
    """The edge does not know the tunnel (404): connect again with the same id."""


class Later(Exception):
    """503 to a poll (the edge is stopping): poll again after `delay`, same tunnel."""

    def __init__(self, delay: float):
        super().__init__(f"poll again in {delay:g}s")
        self.delay = delay


def _retry_after(value: str | None) -> float:
    try:
        return min(BACKOFF_MAX, max(0.1, float(value or 1)))
    except ValueError:
        return 1.0


def _message(raw: bytes) -> str | None:
    try:
        return _error.decode(raw).error.message
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


def backoff(failures: int) -> float:
    """The pause after `failures` failed connects in a row: 1 s doubling to 60 s, with
    jitter so a fleet that lost its edge does not come back in one wave."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)


@dataclass
class TunnelClient:
    session: aiohttp.ClientSession
    edge_url: str  # http(s)://edge[:port]
    api_key: str | None  # an edge key with scope "register"
    local_url: str  # this process's own listener
    concurrency: int  # long-polls kept outstanding: one per free slot
    id_file: str | None = None  # where the tunnel id is kept across restarts
    worker_id: Callable[[], str | None] = lambda: None  # the controller's id, once known
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # The role's tracer when tracing is on (RoleInfo.tracer, eldric.trace.otel), else None
    tracer: Any = None
    tunnel_id: str | None = None
    url: str | None = None  # tunnel://EDGE/ID once connected: what the member advertises
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    long_poll: float = 30.0
    poll_path: str = ""
    _serving: set[asyncio.Task] = field(default_factory=set)  # slots running a request
    served: int = 0
    _generation: int = 0  # bumped at every connect: a slot that lost an older one waits
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.edge_url = self.edge_url.rstrip("/")
        if self.tunnel_id is None and self.id_file:
            with contextlib.suppress(OSError), open(self.id_file) as f:
                self.tunnel_id = f.read().strip() or None

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        out = dict(extra or {})
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out

    # ---------------------------------------------------------------- connecting

    async def connect(self) -> None:
        """One connect: the edge's Connected, or EdgeRefused / a connection error."""
        body = Connect(tunnel_id=self.tunnel_id, worker_id=self.worker_id(),
                       concurrency=self.concurrency)
        async with self.session.post(
                self.edge_url + "/api/v1/tunnel/connect", data=_enc.encode(body),
                headers=self._headers({"Content-Type": "application/json"}),
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)) as resp:
            raw = await resp.read()
            if resp.status == 409 and self.tunnel_id is not None:
                # the id is another client's now (this key changed hands): take a new one
                log.warning("tunnel_id_taken", edge=self.edge_url, tunnel_id=self.tunnel_id,
                            message=_message(raw))
                self.tunnel_id = None
                return await self.connect()
            if resp.status != 200:
                raise EdgeRefused("tunnel connect", resp.status, _message(raw))
        try:
            got = _connected.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise EdgeRefused("tunnel connect", 200, f"not a Connected reply: {exc}") from None
        if got.tunnel_id != self.tunnel_id:
            self._save(got.tunnel_id)
        self.tunnel_id, self.url, self.poll_path = got.tunnel_id, got.url, got.poll_url
        self.long_poll = got.long_poll_ms / 1000
        self._generation += 1
        self.connected.set()
        log.info("tunnel_connected", edge=self.edge_url, tunnel_id=got.tunnel_id, url=got.url,
                 concurrency=self.concurrency)

    def _save(self, tunnel_id: str) -> None:
        if not self.id_file:
            return
        tmp = f"{self.id_file}.tmp"
        with open(tmp, "w") as f:
            f.write(tunnel_id + "\n")
        os.replace(tmp, self.id_file)

    async def _reconnect(self, generation: int) -> bool:
        """Connect (again), retrying with backoff until it works: True; False when the
        process stops first. Slots that lost the same connection reconnect once."""
        async with self._lock:
            if self._generation != generation:
                return True  # another slot did it already
            self.connected.clear()
            failures = 0
            last = None
            while not self.stopping.is_set():
                try:
                    await self.connect()
                    if failures:
                        log.info("tunnel_reachable_again", edge=self.edge_url)
                    return True
                except (aiohttp.ClientError, OSError, TimeoutError, EdgeRefused) as exc:
                    failures += 1
                    delay = backoff(failures)
                    last = self._problem(exc, failures, delay, last)
                    if await self._pause(delay):
                        return False
            return False

    def _problem(self, exc: Exception, failures: int, delay: float, last: str | None) -> str:
        """Log why the edge did not take the tunnel; the first of a kind is a warning or
        an error, repeats are debug (no log flood while the edge is away)."""
        fields: dict = {"edge": self.edge_url, "retry_in_s": round(delay, 2)}
        if isinstance(exc, EdgeRefused) and exc.status in (401, 403):
            event = "tunnel_refused_key"
            fields.update(status=exc.status, message=exc.message, advice=(
                "the edge wants a key: set --api-key to an edge key with scope register"
                if not self.api_key else
                "this --api-key is not an edge key with scope register (the edge's "
                "POST /api/v1/clients/register with scopes [\"register\"] makes one)"))
        elif isinstance(exc, EdgeRefused):
            event = "tunnel_refused"
            fields.update(status=exc.status, message=exc.message)
        else:
            event = "tunnel_edge_unreachable"
            fields["error"] = f"{type(exc).__name__}: {exc}".rstrip(": ")
        kind = f"{event}:{fields.get('status')}"
        if failures == 1 or kind != last:
            (log.error if event == "tunnel_refused_key" else log.warning)(event, **fields)
        else:
            log.debug(event, **fields)
        return kind

    async def _pause(self, seconds: float) -> bool:
        """Sleep; True (at once) when the process starts to stop."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # ---------------------------------------------------------------- the slots

    async def run(self) -> None:
        """Connect, then keep `concurrency` slots polling and serving until the process
        stops; then let running requests finish (bounded) and disconnect."""
        slots: list[asyncio.Task] = []
        try:
            if not await self._reconnect(self._generation):
                return
            slots = [spawn(self._slot(), name=f"tunnel-slot-{i}")
                     for i in range(self.concurrency)]
            await self.stopping.wait()
        finally:
            # A slot between requests is in a poll: cancelled at once (a request it took
            # now would find the listener closed); a busy one finishes its request within
            # DRAIN_TIMEOUT.
            for task in slots:
                if task not in self._serving:
                    await cancel(task)
            busy = [t for t in slots if t in self._serving]
            if busy:
                await asyncio.wait(busy, timeout=DRAIN_TIMEOUT)
            for task in busy:
                await cancel(task)
            await self.disconnect()

    async def _slot(self) -> None:
        while not self.stopping.is_set():
            generation = self._generation
            try:
                requests = await self._poll()
            except Later as exc:
                if await self._pause(exc.delay):
                    return
                continue
            except (Lost, aiohttp.ClientError, OSError, TimeoutError, EdgeRefused) as exc:
                if not isinstance(exc, Lost):
                    log.debug("tunnel_poll_failed", error=f"{type(exc).__name__}: {exc}")
                else:
                    log.warning("tunnel_lost", edge=self.edge_url, tunnel_id=self.tunnel_id)
                if not await self._reconnect(generation):
                    return
                continue
            me = asyncio.current_task()
            for tr in requests:
                self._serving.add(me)  # type: ignore[arg-type]
                try:
                    await self.serve(tr)
                finally:
                    self._serving.discard(me)  # type: ignore[arg-type]
                    self.served += 1

    async def _poll(self) -> list[TunnelRequest]:
        async with self.session.get(
                self.edge_url + self.poll_path, headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=self.long_poll + POLL_SLACK)) as resp:
            raw = await resp.read()
            if resp.status == 204:
                return []
            if resp.status == 404:
                raise Lost()
            if resp.status == 503:
                raise Later(_retry_after(resp.headers.get("Retry-After")))
            if resp.status != 200:
                raise EdgeRefused("tunnel poll", resp.status, _message(raw))
        try:
            return _poll.decode(raw).requests
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise EdgeRefused("tunnel poll", 200, f"not a Poll reply: {exc}") from None

    # ---------------------------------------------------------------- one request

    async def serve(self, tr: TunnelRequest) -> None:
        """Run one request against the local listener and upload its reply as it comes."""
        try:
            body = base64.b64decode(tr.body, validate=True)
        except ValueError:
            await self._upload_error(tr, 400, "the tunnel request's body is not base64")
            return
        headers = [(k, v) for k, v in tr.headers if k.lower() not in _DROP]
        if self.tracer is None:
            await self._serve(tr, body, headers)
            return
        from eldric.trace import otel  # traced: this side of the tunnel is a span
        span, headers = otel.received(self.tracer, headers, "eldric.tunnel.serve", {
            "eldric.tunnel.id": self.tunnel_id or "", "eldric.tunnel.request": tr.id,
            "http.request.method": tr.method, "url.path": tr.path.split("?", 1)[0]})
        with span:
            if not await self._serve(tr, body, headers):
                span.fail("the request did not reach its listener or its reply the edge")

    async def _serve(self, tr: TunnelRequest, body: bytes,
                     headers: list[tuple[str, str]]) -> bool:
        """Run it locally and upload the reply: False when that failed on the way."""
        try:
            local = await self.session.request(
                tr.method, self.local_url + tr.path, data=body or None, headers=headers,
                allow_redirects=False, skip_auto_headers=("Content-Type",),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CALL_TIMEOUT))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self._upload_error(tr, 502, f"the worker's own listener failed: {exc}")
            return False
        try:
            status = await self._upload(tr, local.status, downstream_headers(local.raw_headers),
                                        _chunks(local))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("tunnel_upload_broken", request=tr.id, path=tr.path,
                        error=f"{type(exc).__name__}: {exc}")
            return False
        finally:
            local.close()  # at once: the local handler sees its client leave
        if status == 409:
            log.info("tunnel_caller_left", request=tr.id, path=tr.path)
        elif status >= 300:
            log.warning("tunnel_upload_refused", request=tr.id, status=status)
            return False
        return True

    async def _upload(self, tr: TunnelRequest, status: int,
                      headers: list[tuple[bytes, bytes]] | list[tuple[str, str]],
                      body: AsyncIterator[bytes] | bytes) -> int:
        """POST the reply; the edge's status (answered early, 409, when the caller left:
        the edge then stops reading and the upload ends)."""
        pairs = [[_text(k), _text(v)] for k, v in headers]
        extra = {STATUS_HEADER: str(status), HEADERS_HEADER: _enc.encode(pairs).decode(),
                 "Content-Type": "application/octet-stream"}
        url = f"{self.edge_url}/api/v1/tunnel/{self.tunnel_id}/response/{tr.id}"
        async with self.session.post(url, data=body, headers=self._headers(extra),
                                     timeout=aiohttp.ClientTimeout(total=None)) as resp:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await resp.read()
            return resp.status

    async def _upload_error(self, tr: TunnelRequest, status: int, message: str) -> None:
        body = _enc.encode({"error": {"message": message, "type": "upstream_error",
                                      "param": None, "code": "tunnel_local_failed"}})
        try:
            await self._upload(tr, status, [("Content-Type", "application/json")], body)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("tunnel_upload_broken", request=tr.id, error=str(exc))

    async def disconnect(self) -> None:
        """Tell the edge the tunnel is going (bounded; failing is harmless: the edge
        drops a silent tunnel by itself)."""
        if self.tunnel_id is None or not self.connected.is_set():
            return
        self.connected.clear()
        try:
            async with self.session.post(
                    f"{self.edge_url}/api/v1/tunnel/{self.tunnel_id}/disconnect",
                    headers=self._headers(), timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                await resp.read()
            log.info("tunnel_disconnected", edge=self.edge_url, tunnel_id=self.tunnel_id)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("tunnel_disconnect_failed", edge=self.edge_url, error=str(exc))


async def _chunks(local: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The local reply's body as it arrives. A local reply that breaks raises: the upload
    then breaks too, so the edge cuts the caller's stream rather than end it cleanly."""
    async for chunk in local.content.iter_any():
        yield chunk


def _text(v: str | bytes) -> str:
    return v.decode("latin-1") if isinstance(v, bytes) else v
