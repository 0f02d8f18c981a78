"""This worker's cluster membership (the loop, and what it sends, are
eldric.cluster.membership: registration and heartbeats follow the worker's /health)."""

from __future__ import annotations

from aiohttp import web

from eldric.cluster.membership import Membership
from eldric.roles.worker.state import WORKER


def membership(app: web.Application) -> Membership:
    st = app[WORKER]
    return Membership(app=app, controller_url=st.cfg.controller_url, api_key=st.cfg.api_key,
                      interval=st.cfg.heartbeat_interval_ms / 1000, prefix="wrk-",
                      tags=st.cfg.tags, fixed_id=st.cfg.worker_id)
