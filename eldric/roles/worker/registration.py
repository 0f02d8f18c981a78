"""Register with the controller and heartbeat; keep serving whatever the controller does.

The worker's id is kept in --data-dir, so a restarted worker comes back as itself. A 404 on
heartbeat means the controller forgot this worker (restart, expiry): register again. An
unreachable controller is retried with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import __version__, keys
from eldric.roles.worker.health import load_of
from eldric.roles.worker.state import WORKER, WorkerState
from eldric.wire.cluster import BackendInfo, Heartbeat, RegisterReply, WorkerInfo

log = structlog.get_logger("eldric.worker")

_enc = msgspec.json.Encoder()


def id_file(app: web.Application) -> str:
    port = app[keys.ROLE].advertise_url.rsplit(":", 1)[-1]
    return os.path.join(app[keys.PROCESS].data_dir, f"worker-{port}.id")


def load_id(app: web.Application) -> str | None:
    st = app[WORKER]
    if st.cfg.worker_id:
        return st.cfg.worker_id
    try:
        with open(id_file(app)) as f:
            return f.read().strip() or None
    except OSError:
        return None


def save_id(app: web.Application, worker_id: str) -> None:
    path = id_file(app)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(worker_id + "\n")
    os.replace(tmp, path)


def new_id() -> str:
    return f"wrk-{secrets.token_hex(6)}"


class ControllerError(Exception):
    pass


def _status(st: WorkerState) -> str:
    return "healthy" if st.upstream.healthy else "unhealthy"


async def _post(app: web.Application, path: str, body: msgspec.Struct) -> tuple[int, bytes]:
    st = app[WORKER]
    headers = {"Content-Type": "application/json"}
    if st.cfg.api_key:
        headers["Authorization"] = f"Bearer {st.cfg.api_key}"
    url = st.cfg.controller_url.rstrip("/") + path  # type: ignore[union-attr]
    timeout = aiohttp.ClientTimeout(total=10, sock_connect=st.timeouts.connect)
    async with app[keys.SESSION].post(url, data=_enc.encode(body), headers=headers,
                                      timeout=timeout) as resp:
        return resp.status, await resp.read()


async def register(app: web.Application) -> None:
    st = app[WORKER]
    info = WorkerInfo(id=st.worker_id, worker_type="inference", url=app[keys.ROLE].advertise_url,
                      backend=BackendInfo(type=st.cfg.backend, url=st.backend_url,
                                          healthy=st.upstream.healthy),
                      models=list(st.upstream.models), tags=list(st.cfg.tags),
                      load=load_of(st), status=_status(st), version=__version__)
    status, raw = await _post(app, "/api/v1/workers/register", info)
    if status not in (200, 201):
        raise ControllerError(f"register answered HTTP {status}: {raw[:200]!r}")
    try:
        given = msgspec.json.decode(raw, type=RegisterReply).id
    except (msgspec.DecodeError, msgspec.ValidationError):
        given = st.worker_id
    if not given:
        raise ControllerError("register reply carried no id")
    if given != st.worker_id:
        st.worker_id = given
        save_id(app, given)
    log.info("registered", worker_id=st.worker_id, controller=st.cfg.controller_url)


async def heartbeat(app: web.Application) -> bool:
    """True if the controller knows us; False if it answered 404 (register again)."""
    st = app[WORKER]
    load = load_of(st)
    beat = Heartbeat(status=_status(st), load=load, models=list(st.upstream.models),
                     active_requests=load.active_requests)
    status, raw = await _post(app, f"/api/v1/workers/{st.worker_id}/heartbeat", beat)
    if status == 404:
        log.warning("controller_forgot_worker", worker_id=st.worker_id)
        return False
    if status >= 300:
        raise ControllerError(f"heartbeat answered HTTP {status}: {raw[:200]!r}")
    return True


async def registration_loop(app: web.Application) -> None:
    st = app[WORKER]
    interval = st.cfg.heartbeat_interval_ms / 1000
    registered = False
    failures = 0
    while True:
        try:
            if not registered:
                await register(app)
                registered = True
            elif not await heartbeat(app):
                registered = False
                continue
            if failures:
                log.info("controller_reachable_again", controller=st.cfg.controller_url)
            failures = 0
            await asyncio.sleep(interval)
        except (aiohttp.ClientError, OSError, TimeoutError, ControllerError) as exc:
            failures += 1
            # Capped exponential backoff with jitter, never slower than the heartbeat.
            delay = min(interval, 0.25 * 2 ** min(failures, 10)) * random.uniform(0.8, 1.2)
            (log.warning if failures == 1 else log.debug)(
                "controller_unreachable", controller=st.cfg.controller_url,
                error=f"{type(exc).__name__}: {exc}", retry_in_s=round(delay, 2))
            await asyncio.sleep(delay)
