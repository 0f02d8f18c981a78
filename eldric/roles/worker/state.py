"""The worker's run-time state, kept on its app under WORKER."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from eldric.bus import UpstreamState
from eldric.cluster.membership import Membership
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
    membership: Membership | None = None  # set at start-up
    loading: bool = False  # the embedded backend's model is still loading
    load_error: str | None = None  # ... or could not be loaded (it stays "loading")
    paths: list[str] | None = None  # served natively (health.served_paths)
    translated: list[str] = field(default_factory=list)  # health.translated_paths

    @property
    def worker_id(self) -> str | None:
        return self.membership.worker_id if self.membership else None

    @property
    def serves_embeddings(self) -> bool:
        """Whether /v1/embeddings goes to the backend: the embedded llama.cpp serves it only
        with --embeddings (without it the worker answers 501 itself); any other backend is
        asked and answers for itself."""
        return self.cfg.backend != "embedded" or self.cfg.embeddings

    @property
    def max_concurrency(self) -> int | None:
        """Requests the backend handles at once, for routers' back-pressure: as configured,
        else the embedded llama.cpp's slots; unknown for a backend eldric does not run."""
        if self.cfg.max_concurrency is not None:
            return self.cfg.max_concurrency
        return self.cfg.parallel if self.cfg.backend == "embedded" else None

    def set_backend(self, url: str) -> None:
        self.backend_url = url
        self.upstream.url = url
        headers = ({"Authorization": f"Bearer {self.cfg.backend_api_key}"}
                   if self.cfg.backend_api_key else None)
        self.target = Target(state=self.upstream, base_url=url, headers=headers)


# Role-owned key: a third-party role cannot add to eldric/keys.py, so role state keys live
# with the role (eldric/keys.py holds the keys shared across roles).
WORKER: web.AppKey[WorkerState] = web.AppKey("eldric_worker", WorkerState)
