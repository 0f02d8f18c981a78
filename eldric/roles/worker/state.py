"""The worker's run-time state, kept on its app under WORKER."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from eldric.bus import UpstreamState
from eldric.cluster.membership import Membership
from eldric.roles.worker.backends import BackendKind
from eldric.roles.worker.config import WorkerConfig
from eldric.stream import Target, Timeouts
from eldric.sysload import HostLoad
from eldric.wire import xmltools

from eldric.wire.vision import Vision

if TYPE_CHECKING:
    from eldric.cluster.tunnel_client import TunnelClient
    from eldric.roles.worker.embedded_models import EmbeddedModels


@dataclass
class Reached:
    """The worker's one backend as a Reach (eldric.backends.egress: its attributes are
    plain variables, so not frozen)."""

    name: str
    url: str
    key: str | None
    options: Mapping[str, Any]
    extra_headers: dict[str, str]
    state: UpstreamState


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
    tunnel: TunnelClient | None = None  # with --tunnel: how its requests reach it
    loading: bool = False  # the embedded backend's model is still loading
    load_error: str | None = None  # ... or could not be loaded (it stays "loading")
    paths: list[str] | None = None  # served natively (health.served_paths)
    translated: list[str] = field(default_factory=list)  # health.translated_paths
    models_dir: Path = Path("models")  # --models-dir, else DATA_DIR/models (set in build)
    # The embedded backend's models, loaded on demand (None for every other backend: its
    # requests go to `target`)
    models: EmbeddedModels | None = None
    vision: Vision = field(default_factory=Vision)  # which models take images (build)
    # Whether a chat's images matter here at all (some model cannot see them, or the
    # backend takes no image URLs): else a chat request is not even searched for them.
    images: bool = False

    @property
    def reach(self) -> Reached:
        """The backend as eldric.backends.call reaches a native kind (egress.Reach)."""
        return Reached(self.cfg.backend, self.backend_url, self.cfg.backend_api_key,
                       self.cfg.backend_options, {}, self.upstream)

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

    @property
    def may_emulate(self) -> bool:
        """Whether any model's tools may be emulated here (a check of two fields, made
        before a body is looked at: a worker that emulates nothing pays nothing)."""
        return self.kind.tools == "xml" or bool(self.cfg.xml_tools_models)

    def emulates_tools(self, model: str) -> bool:
        """Whether `model`'s tool calls are emulated in XML: --xml-tools-models names it,
        or its kind has no native ones (the embedded backend: unless the model's own chat
        template takes tools, which llama.cpp then handles itself)."""
        if xmltools.matches(model, self.cfg.xml_tools_models):
            return True
        if self.kind.tools != "xml":
            return False
        return self.models is None or not self.models.native_tools(model or None)

    def set_backend(self, url: str) -> None:
        self.use(self.target_at(url))

    def target_at(self, url: str) -> Target:
        headers = ({"Authorization": f"Bearer {self.cfg.backend_api_key}"}
                   if self.cfg.backend_api_key else None)
        return Target(state=self.upstream, base_url=url, headers=headers)

    def use(self, target: Target) -> None:
        """Send requests to `target` (the embedded backend: the model last asked for)."""
        self.target = target
        self.backend_url = self.upstream.url = target.base_url

    def refresh(self) -> list[str]:
        """The models served, read again now: what the model operations call after
        installing or deleting a file, so it is servable (or gone) at once. The embedded
        backend reads its models directory; another backend's list is its own, asked by
        the next probe (app[keys.PROBER].now)."""
        if self.models is not None:
            self.upstream.models = self.models.rescan()
        return list(self.upstream.models)


# Role-owned key: a third-party role cannot add to eldric/keys.py, so role state keys live
# with the role (eldric/keys.py holds the keys shared across roles).
WORKER: web.AppKey[WorkerState] = web.AppKey("eldric_worker", WorkerState)
