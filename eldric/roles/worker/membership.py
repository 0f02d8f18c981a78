"""What this worker registers and heartbeats with (the loop is eldric.cluster.membership)."""

from __future__ import annotations

from aiohttp import web

from eldric import __version__, keys
from eldric.cluster.membership import Membership
from eldric.roles.worker.health import load_of
from eldric.roles.worker.state import WORKER
from eldric.wire.cluster import BackendInfo, Heartbeat, WorkerInfo


def membership(app: web.Application) -> Membership:
    st = app[WORKER]

    def status() -> str:
        return "healthy" if st.upstream.healthy else "unhealthy"

    def info() -> WorkerInfo:
        return WorkerInfo(worker_type="inference", url=app[keys.ROLE].advertise_url,
                          backend=BackendInfo(type=st.cfg.backend, url=st.backend_url,
                                              healthy=st.upstream.healthy),
                          models=list(st.upstream.models), tags=list(st.cfg.tags),
                          load=load_of(st), status=status(), version=__version__)

    def beat() -> Heartbeat:
        load = load_of(st)
        return Heartbeat(status=status(), load=load, models=list(st.upstream.models),
                         active_requests=load.active_requests)

    return Membership(app=app, controller_url=st.cfg.controller_url, api_key=st.cfg.api_key,
                      interval=st.cfg.heartbeat_interval_ms / 1000, prefix="wrk-",
                      info=info, beat=beat, fixed_id=st.cfg.worker_id)
