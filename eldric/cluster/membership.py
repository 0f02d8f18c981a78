"""Register with the controller and heartbeat; keep serving whatever the controller does.

Used by every role that belongs to a cluster (worker, cloud, router). What is sent comes
from the role: a `describe(app) -> WorkerInfo` function (the worker-like roles use
`from_health`, their own /health answer; the router says which strategy it runs).

The id is kept in --data-dir (`<role>-<port>.id`), so a restarted member comes back as
itself; a new one starts with its worker type's prefix (wire.cluster.ID_PREFIX). A 404 on
heartbeat means the controller forgot this member (restart, expiry): register again. An
unreachable controller is retried with capped exponential backoff, never slower than the
heartbeat; so is one that refuses the key (logged as a key problem). On a clean stop the
member tells the controller it is going offline, within LEAVE_TIMEOUT: a dead controller
must not hold up the shutdown.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.cluster.config import MemberConfig
from eldric.context import data_file
from eldric.errors import ErrorEnvelope
from eldric.tasks import spawn
from eldric.wire.cluster import (ID_PREFIX, Heartbeat, RegisterReply, WorkerInfo, WorkerType,
                                 new_id)

log = structlog.get_logger("eldric.cluster")

_enc = msgspec.json.Encoder()
_error = msgspec.json.Decoder(ErrorEnvelope)

CALL_TIMEOUT = 10.0  # seconds, register and heartbeat
LEAVE_TIMEOUT = 1.0  # seconds, the deregistration on the way out


class ControllerError(Exception):
    """The controller answered, but not with what was asked."""

    def __init__(self, what: str, status: int | None = None, message: str | None = None):
        super().__init__(what)
        self.what = what
        self.status = status
        self.message = message  # the controller's own error text, when it sent one


class KeyRefused(ControllerError):
    """401/403: the cluster key is missing or wrong. Retrying will not fix it alone, but
    an operator may fix the controller's side, so the member keeps trying."""


def _message(raw: bytes) -> str | None:
    """The message of an OpenAI-shaped error body; None for anything else (never the
    raw bytes: they may be an HTML error page)."""
    try:
        return _error.decode(raw).error.message
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


def from_health(app: web.Application) -> WorkerInfo:
    """A worker-like role described by its own /health answer (app[keys.HEALTH], a
    WorkerHealth), so the controller sees what /health says."""
    h = app[keys.HEALTH](app)
    return WorkerInfo(worker_type=h.worker_type, url=app[keys.ROLE].advertise_url,
                      backend=h.backend, models=h.models, load=h.load, status=h.status,
                      version=h.version, paths=h.paths, model_ops=h.model_ops)


@dataclass
class Membership:
    app: web.Application
    controller_url: str | None
    api_key: str | None  # the cluster key the controller demands
    interval: float  # heartbeat period, seconds
    worker_type: WorkerType  # what it registers as; its id's prefix (ID_PREFIX)
    tags: list[str]
    fixed_id: str | None = None
    worker_id: str | None = None
    # What this member is, built afresh for every register and heartbeat.
    describe: Callable[[web.Application], WorkerInfo] = from_health
    registered: bool = False
    _registering: bool = False

    @classmethod
    def of(cls, app: web.Application, cfg: MemberConfig, worker_type: WorkerType,
           describe: Callable[[web.Application], WorkerInfo] = from_health) -> Membership:
        """The one way a role joins: its MemberConfig, what it registers as, and what it
        says about itself (by default its own /health answer)."""
        return cls(app=app, controller_url=cfg.controller_url, api_key=cfg.api_key,
                   interval=cfg.heartbeat_interval_ms / 1000, worker_type=worker_type,
                   tags=cfg.tags, fixed_id=cfg.worker_id, describe=describe)

    # ---------------------------------------------------------------- what is sent

    def info(self) -> WorkerInfo:
        """What to register with (the id is filled in by register())."""
        info = self.describe(self.app)
        info.tags = list(self.tags)
        return info

    def beat(self) -> Heartbeat:
        i = self.describe(self.app)
        return Heartbeat(status=i.status, load=i.load, models=i.models,
                         active_requests=i.load.active_requests, backend=i.backend,
                         router=i.router)

    # ---------------------------------------------------------------- identity

    def _id_file(self) -> str:
        # Named for the role, like every state file (worker-8890.id, cloud-8889.id). Some
        # were once named for the id prefix (cld-8889.id): such a file is taken over.
        return data_file(self.app, f"{self.app[keys.ROLE].name}.id",
                         formerly=ID_PREFIX.get(self.worker_type, "wrk-").rstrip("-"))

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
            self._save(new_id(self.worker_type))
        return self.worker_id

    def _save(self, worker_id: str) -> None:
        self.worker_id = worker_id
        path = self._id_file()
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(worker_id + "\n")
        os.replace(tmp, path)

    # ---------------------------------------------------------------- talking

    async def _post(self, path: str, body: msgspec.Struct | None,
                    timeout: float = CALL_TIMEOUT) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.controller_url.rstrip("/") + path  # type: ignore[union-attr]
        data = _enc.encode(body) if body is not None else b"{}"
        async with self.app[keys.SESSION].post(url, data=data, headers=headers,
                                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return resp.status, await resp.read()

    @staticmethod
    def _check(what: str, status: int, raw: bytes) -> None:
        if status in (401, 403):
            raise KeyRefused(what, status)
        if status >= 300:
            raise ControllerError(f"{what} answered HTTP {status}", status, _message(raw))

    async def register(self) -> None:
        info = self.info()
        info.id = self.worker_id
        # Still True if this task is cancelled before the reply: leave() then tells the
        # controller anyway (it may have registered us).
        self._registering = True
        status, raw = await self._post("/api/v1/workers/register", info)
        self._registering = False
        self._check("register", status, raw)
        try:
            given = msgspec.json.decode(raw, type=RegisterReply).id
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            given = self.worker_id
        if not given:
            raise ControllerError("register reply carried no id", status)
        if given != self.worker_id:
            self._save(given)
        self.registered = True
        log.info("registered", worker_id=self.worker_id, controller=self.controller_url)

    async def heartbeat(self) -> bool:
        """True if the controller knows us; False if it answered 404 (register again)."""
        status, raw = await self._post(f"/api/v1/workers/{self.worker_id}/heartbeat",
                                       self.beat())
        if status == 404:
            log.warning("controller_forgot_worker", worker_id=self.worker_id)
            self.registered = False
            return False
        self._check("heartbeat", status, raw)
        return True

    async def beat_now(self) -> None:
        """A heartbeat at once, beside the loop's (the models changed: the controller and
        the routers see it without waiting a period). Failing is harmless: the loop's
        next heartbeat says the same."""
        if not (self.registered and self.controller_url and self.worker_id):
            return
        try:
            await self.heartbeat()
        except (aiohttp.ClientError, OSError, TimeoutError, ControllerError) as exc:
            log.debug("heartbeat_now_failed", error=f"{type(exc).__name__}: {exc}")

    async def leave(self) -> None:
        """Tell the controller this member is going offline (it keeps the record, so a
        restart comes back as itself). Bounded by LEAVE_TIMEOUT; failing is harmless:
        the controller then notices the silence after its --worker-timeout."""
        if not ((self.registered or self._registering) and self.controller_url
                and self.worker_id):
            return
        self.registered = self._registering = False
        try:
            status, raw = await self._post(f"/api/v1/workers/{self.worker_id}/deregister",
                                           None, timeout=LEAVE_TIMEOUT)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # Info, not a warning: with --role all the controller stops at the same time.
            log.info("deregister_failed", worker_id=self.worker_id,
                     controller=self.controller_url, error=f"{type(exc).__name__}: {exc}")
            return
        if status >= 300:
            log.info("deregister_failed", worker_id=self.worker_id,
                     controller=self.controller_url, status=status, message=_message(raw))
            return
        log.info("deregistered", worker_id=self.worker_id, controller=self.controller_url)

    # ---------------------------------------------------------------- the loop

    async def _pause(self, seconds: float) -> bool:
        """Sleep; True (at once) when the process starts to stop."""
        stopping = self.app.get(keys.STOPPING)
        if stopping is None:
            await asyncio.sleep(seconds)
            return False
        try:
            await asyncio.wait_for(stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _problem(self, exc: Exception, failures: int, delay: float, last: str | None) -> str:
        """Log why the controller did not take the call; returns what it was (event and
        status). The first of a kind is a warning, repeats are debug (no log flood while
        the controller is down or the key is wrong)."""
        fields: dict = {"controller": self.controller_url, "retry_in_s": round(delay, 2)}
        if isinstance(exc, KeyRefused):
            event = "controller_refused_key"
            var = f"ELDRIC_{self.app[keys.ROLE].name.upper()}_API_KEY"
            fields.update(status=exc.status, call=exc.what, advice=(
                f"the controller wants its --cluster-key: set --api-key (or {var}) to it"
                if not self.api_key else
                f"this --api-key ({var}) is not the controller's --cluster-key"))
        elif isinstance(exc, ControllerError):
            event = "controller_error"
            fields.update(status=exc.status, error=exc.what)
            if exc.message:
                fields["message"] = exc.message
        else:
            event = "controller_unreachable"
            fields["error"] = f"{type(exc).__name__}: {exc}".rstrip(": ")
        kind = f"{event}:{fields.get('status')}"
        (log.warning if failures == 1 or kind != last else log.debug)(event, **fields)
        return kind

    async def run(self) -> None:
        """Register, heartbeat, re-register when forgotten, until the process stops (or
        the task is cancelled); then leave. With --processes only the primary speaks for
        the role (eldric.processes): in a child this returns at once."""
        if not self.app[keys.ROLE].primary:
            return
        try:
            await self._keep()
        finally:
            # The role's clean-up cancels this task soon after the process starts to
            # stop, maybe while it is leaving: finish that first (LEAVE_TIMEOUT bounds it).
            leaving = spawn(self.leave(), name="cluster-leave")
            try:
                await asyncio.shield(leaving)
            except asyncio.CancelledError:
                await leaving
                raise

    async def _keep(self) -> None:
        failures = 0
        last: str | None = None
        stopping = self.app.get(keys.STOPPING)
        while stopping is None or not stopping.is_set():
            try:
                if not self.registered:
                    await self.register()
                elif not await self.heartbeat():
                    continue
                if failures:
                    log.info("controller_reachable_again", controller=self.controller_url)
                failures, last = 0, None
                if await self._pause(self.interval):
                    return
            except (aiohttp.ClientError, OSError, TimeoutError, ControllerError) as exc:
                failures += 1
                delay = min(self.interval, 0.25 * 2 ** min(failures, 10)) * random.uniform(0.8, 1.2)
                last = self._problem(exc, failures, delay, last)
                if await self._pause(delay):
                    return
