"""Register with the controller and heartbeat; keep serving whatever the controller does.

Used by every worker-like role (worker, cloud). The id is kept in --data-dir, so a
restarted worker comes back as itself. A 404 on heartbeat means the controller forgot
this worker (restart, expiry): register again. An unreachable controller is retried with
capped exponential backoff, never slower than the heartbeat.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
from dataclasses import dataclass

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.context import data_file
from eldric.wire.cluster import Heartbeat, RegisterReply, WorkerInfo

log = structlog.get_logger("eldric.cluster")

_enc = msgspec.json.Encoder()


class ControllerError(Exception):
    pass


@dataclass
class Membership:
    app: web.Application
    controller_url: str | None
    api_key: str | None  # the cluster key the controller demands
    interval: float  # heartbeat period, seconds
    prefix: str  # "wrk-" | "cld-"
    tags: list[str]
    fixed_id: str | None = None
    worker_id: str | None = None

    # ---------------------------------------------------------------- what is sent
    # Both come from the role's own /health answer (app[keys.HEALTH], a WorkerHealth), so
    # the controller sees what /health says.

    def info(self) -> WorkerInfo:
        """What to register with (the id is filled in by register())."""
        h = self.app[keys.HEALTH](self.app)
        return WorkerInfo(worker_type=h.worker_type, url=self.app[keys.ROLE].advertise_url,
                          backend=h.backend, models=h.models, tags=list(self.tags),
                          load=h.load, status=h.status, version=h.version, paths=h.paths)

    def beat(self) -> Heartbeat:
        h = self.app[keys.HEALTH](self.app)
        return Heartbeat(status=h.status, load=h.load, models=h.models,
                         active_requests=h.load.active_requests)

    # ---------------------------------------------------------------- identity

    def _id_file(self) -> str:
        kind = self.prefix.rstrip("-")
        name = "worker" if kind == "wrk" else kind  # worker-8890.id, as before
        return data_file(self.app, f"{name}.id")

    def load_id(self) -> str | None:
        """The id to use: fixed, or kept from an earlier run; standalone, a new one."""
        if self.fixed_id:
            self.worker_id = self.fixed_id
            return self.worker_id
        try:
            with open(self._id_file()) as f:
                self.worker_id = f.read().strip() or None
        except OSError:
            self.worker_id = None
        if self.worker_id is None and not self.controller_url:
            # Standalone: make our own id (a controller would assign one).
            self._save(f"{self.prefix}{secrets.token_hex(6)}")
        return self.worker_id

    def _save(self, worker_id: str) -> None:
        self.worker_id = worker_id
        path = self._id_file()
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(worker_id + "\n")
        os.replace(tmp, path)

    # ---------------------------------------------------------------- talking

    async def _post(self, path: str, body: msgspec.Struct) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.controller_url.rstrip("/") + path  # type: ignore[union-attr]
        timeout = aiohttp.ClientTimeout(total=10)
        async with self.app[keys.SESSION].post(url, data=_enc.encode(body), headers=headers,
                                               timeout=timeout) as resp:
            return resp.status, await resp.read()

    async def register(self) -> None:
        info = self.info()
        info.id = self.worker_id
        status, raw = await self._post("/api/v1/workers/register", info)
        if status not in (200, 201):
            raise ControllerError(f"register answered HTTP {status}: {raw[:200]!r}")
        try:
            given = msgspec.json.decode(raw, type=RegisterReply).id
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            given = self.worker_id
        if not given:
            raise ControllerError("register reply carried no id")
        if given != self.worker_id:
            self._save(given)
        log.info("registered", worker_id=self.worker_id, controller=self.controller_url)

    async def heartbeat(self) -> bool:
        """True if the controller knows us; False if it answered 404 (register again)."""
        status, raw = await self._post(f"/api/v1/workers/{self.worker_id}/heartbeat",
                                       self.beat())
        if status == 404:
            log.warning("controller_forgot_worker", worker_id=self.worker_id)
            return False
        if status >= 300:
            raise ControllerError(f"heartbeat answered HTTP {status}: {raw[:200]!r}")
        return True

    async def run(self) -> None:
        registered = False
        failures = 0
        while True:
            try:
                if not registered:
                    await self.register()
                    registered = True
                elif not await self.heartbeat():
                    registered = False
                    continue
                if failures:
                    log.info("controller_reachable_again", controller=self.controller_url)
                failures = 0
                await asyncio.sleep(self.interval)
            except (aiohttp.ClientError, OSError, TimeoutError, ControllerError) as exc:
                failures += 1
                delay = min(self.interval, 0.25 * 2 ** min(failures, 10)) * random.uniform(0.8, 1.2)
                (log.warning if failures == 1 else log.debug)(
                    "controller_unreachable", controller=self.controller_url,
                    error=f"{type(exc).__name__}: {exc}", retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
