"""The cluster's worker registry: in memory for serving, persisted to SQLite.

Registrations, deletions and the router configuration are written through before the
reply (a SIGKILLed controller loses none); heartbeats only mark a worker dirty, and the
dirty ones are written in one transaction every flush interval, so hundreds of workers
heartbeating do not queue behind the disk.

Every change a router acts on (a worker added, deleted, offline or back, its models or
status changed, the router settings) moves the registry's version and wakes the routers
long-polling GET /api/v1/workers?since=…; heartbeats that change only load do not.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import msgspec
import structlog

from eldric.store.sqlite import Store
from eldric.wire.cluster import (INFERENCE_TYPES, Heartbeat, RouterSettings, WorkerInfo,
                                 WorkerRecord, new_id)

log = structlog.get_logger("eldric.controller")

_enc = msgspec.json.Encoder()
_record = msgspec.json.Decoder(WorkerRecord)
_settings = msgspec.json.Decoder(RouterSettings)


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.workers: dict[str, WorkerRecord] = {}
        self.router: RouterSettings = RouterSettings()
        self._dirty: set[str] = set()
        # The version is opaque: a per-process prefix, so a restarted controller never
        # repeats a version a router is waiting on.
        self._epoch = secrets.token_hex(4)
        self._changes = 0
        self._changed = asyncio.Event()  # set (and replaced) at every change
        self._closed = False

    # ------------------------------------------------------------------ changes

    @property
    def version(self) -> str:
        return f"{self._epoch}-{self._changes}"

    def _bump(self) -> None:
        self._changes += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, since: str, timeout: float) -> None:
        """Return when the version is no longer `since`, or after `timeout` seconds.
        Every waiter waits on the same Event: a thousand routers cost one set()."""
        if since != self.version or self._closed:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    def close(self) -> None:
        """The controller is stopping: answer every waiting router now, and later
        requests at once (a held request must not stretch the shutdown)."""
        self._closed = True
        self._changed.set()

    async def load(self) -> None:
        for key, value in await self.store.all("workers"):
            try:
                self.workers[key] = _record.decode(value)
            except msgspec.DecodeError:
                log.warning("stored_worker_unreadable", worker=key)
        for key, value in await self.store.all("settings"):
            if key == "router":
                try:
                    self.router = _settings.decode(value)
                except msgspec.ValidationError:
                    # Written by a newer controller (a strategy this one does not know):
                    # routers keep their own until it is set again.
                    log.warning("stored_router_settings_unreadable", settings=value.decode(
                        "utf-8", "replace"))

    async def register(self, info: WorkerInfo) -> WorkerRecord:
        now = time.time()
        wid = info.id or new_id(info.worker_type)
        old = self.workers.get(wid)
        record = WorkerRecord(**{f: getattr(info, f) for f in WorkerInfo.__struct_fields__},
                              last_heartbeat=now,
                              registered_at=old.registered_at if old else now)
        record.id = wid
        if record.status == "offline":
            record.status = "healthy"
        self.workers[wid] = record
        self._dirty.discard(wid)
        await self.store.write("workers", [(wid, _enc.encode(record))])
        self._bump()
        log.info("worker_registered", worker=wid, worker_type=record.worker_type,
                 url=record.url, models=record.models, again=old is not None)
        return record

    def heartbeat(self, wid: str, beat: Heartbeat) -> WorkerRecord | None:
        record = self.workers.get(wid)
        if record is None:
            return None
        if record.status == "offline":
            log.info("worker_back", worker=wid)
        status = beat.status if beat.status != "offline" else "unhealthy"
        changed = status != record.status or beat.models != record.models
        record.status = status
        record.load = beat.load
        record.load.active_requests = beat.active_requests or beat.load.active_requests
        record.models = beat.models
        # Older members send neither: keep what they registered with.
        if beat.backend is not None:
            record.backend = beat.backend
        if beat.router is not None:
            record.router = beat.router
        record.last_heartbeat = time.time()
        self._dirty.add(wid)
        if changed:
            self._bump()
        return record

    async def deregister(self, wid: str) -> WorkerRecord | None:
        """A member stopping cleanly: offline at once (not routed to), the record kept so
        it comes back as itself when it registers again."""
        record = self.workers.get(wid)
        if record is None:
            return None
        was = record.status
        record.status = "offline"
        self._dirty.discard(wid)
        await self.store.write("workers", [(wid, _enc.encode(record))])
        if was != "offline":
            self._bump()
        log.info("worker_left", worker=wid, worker_type=record.worker_type)
        return record

    async def delete(self, wid: str) -> bool:
        if self.workers.pop(wid, None) is None:
            return False
        self._dirty.discard(wid)
        await self.store.write("workers", deletes=[wid])
        self._bump()
        log.info("worker_deleted", worker=wid)
        return True

    async def set_router(self, settings: RouterSettings) -> None:
        self.router = settings
        await self.store.write("settings", [("router", _enc.encode(settings))])
        self._bump()

    async def flush(self) -> None:
        if not self._dirty:
            return
        ids, self._dirty = self._dirty, set()
        puts = [(w, _enc.encode(self.workers[w])) for w in ids if w in self.workers]
        try:
            await self.store.write("workers", puts)
        except BaseException:
            self._dirty |= ids  # not written: the next flush tries them again
            raise

    async def expire(self, timeout: float, expiry: float) -> None:
        now = time.time()
        gone = []
        for wid, record in self.workers.items():
            silent = now - (record.last_heartbeat or 0)
            if silent >= expiry:
                gone.append(wid)
            elif silent >= timeout and record.status != "offline":
                record.status = "offline"
                self._dirty.add(wid)
                self._bump()
                log.warning("worker_offline", worker=wid, silent_s=round(silent, 1))
        for wid in gone:
            log.warning("worker_expired", worker=wid)
            await self.delete(wid)

    # ------------------------------------------------------------------ views

    def select(self, *, type: str | None = None, status: str | None = None,
               model: str | None = None) -> list[WorkerRecord]:
        """Routers are members but not workers: listed only when asked for by type, so a
        router that reads the list (older ones decode worker types strictly) and a client
        discovering workers of a model see workers only."""
        return [r for r in self.workers.values()
                if (r.worker_type == type if type is not None else r.worker_type != "router")
                and (status is None or r.status == status)
                and (model is None or model in r.models)]

    def models(self) -> list[dict]:
        serving = [r for r in self.workers.values()
                   if r.worker_type in INFERENCE_TYPES and r.status != "offline"]
        by_model: dict[str, list[str]] = {}
        for r in serving:
            for m in r.models:
                by_model.setdefault(m, []).append(r.id or "")
        total = len(serving)
        return [{"id": m, "workers": sorted(ids),
                 "coverage_percent": round(100 * len(ids) / total, 1) if total else 0.0}
                for m, ids in sorted(by_model.items())]


async def maintenance(registry: Registry, timeout_s: float, expiry_s: float,
                      flush_s: float) -> None:
    """Flush batched heartbeats and expire silent workers, forever."""
    tick = min(flush_s, timeout_s / 4, 1.0)
    while True:
        await asyncio.sleep(tick)
        try:
            await registry.expire(timeout_s, expiry_s)
            await registry.flush()
        except Exception as exc:  # the disk may fail; serving must not
            log.error("registry_maintenance_failed", error=repr(exc))
