"""The worker behind NAT (--tunnel EDGE): its requests come through the edge's tunnel
(eldric.cluster.tunnel_client), run against its own listener, so every handler, limit
and log line is the same as for a direct caller."""

from __future__ import annotations

from aiohttp import web

from eldric import keys
from eldric.cluster.tunnel_client import TunnelClient
from eldric.context import data_file
from eldric.roles.worker.state import WorkerState

DEFAULT_CONCURRENCY = 32  # without --tunnel-concurrency or --max-concurrency


def client(app: web.Application, st: WorkerState) -> TunnelClient:
    cfg = st.cfg
    return TunnelClient(
        session=app[keys.SESSION], edge_url=cfg.tunnel_url or "", api_key=cfg.api_key,
        local_url=app[keys.ROLE].local_url,
        concurrency=cfg.tunnel_concurrency or st.max_concurrency or DEFAULT_CONCURRENCY,
        id_file=data_file(app, "tunnel.id"), worker_id=lambda: st.worker_id,
        stopping=app[keys.STOPPING], tracer=app[keys.ROLE].tracer)
