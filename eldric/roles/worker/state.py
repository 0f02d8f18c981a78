"""The worker's run-time state, kept on its app under WORKER."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from eldric.bus import UpstreamState
from eldric.roles.worker.backends import BackendKind
from eldric.roles.worker.config import WorkerConfig
from eldric.stream import Target, Timeouts
from eldric.sysload import HostLoad


@dataclass
class WorkerState:
    cfg: WorkerConfig
    kind: BackendKind
    upstream: UpstreamState
    timeouts: Timeouts
    host: HostLoad
    backend_url: str = ""
    target: Target | None = None
    membership: Any = None  # eldric.cluster.membership.Membership, set at start-up
    loading: bool = False  # the embedded backend's model is still loading
    paths: list[str] | None = None  # what /health advertises (health.served_paths)

    @property
    def worker_id(self) -> str | None:
        return self.membership.worker_id if self.membership else None

    def set_backend(self, url: str) -> None:
        self.backend_url = url
        self.upstream.url = url
        headers = ({"Authorization": f"Bearer {self.cfg.backend_api_key}"}
                   if self.cfg.backend_api_key else None)
        self.target = Target(state=self.upstream, base_url=url, headers=headers)


# Role-owned key: a third-party role cannot add to eldric/keys.py, so role state keys live
# with the role (eldric/keys.py holds the keys shared across roles).
WORKER: web.AppKey[WorkerState] = web.AppKey("eldric_worker", WorkerState)
