"""Cluster wire types: what workers send the controller and what their /health says.

Shared by every role that speaks them (worker, cloud, controller, router), so a field
renamed here is renamed everywhere at once.
"""

from __future__ import annotations

import secrets
from typing import Literal, TypeVar, get_args

import msgspec

from eldric.errors import BadRequest
from eldric.wire.head import decode_head
from eldric.wire.models import ModelOps

T = TypeVar("T")

# On what an edge relays to the controller (issue 18): the edge client whose key made the
# call, percent-encoded. The edge sets it on every relayed call, replacing any a caller
# sent; the controller refuses a heartbeat, deregistration or registration again for a
# worker another client contributed (403 worker_forbidden). A call without it came from
# a holder of the cluster key itself (the operator's own members): not checked.
EDGE_CLIENT_HEADER = "X-Eldric-Edge-Client"

# "router": routers register too (they are never routed to; see INFERENCE_TYPES).
WorkerType = Literal["inference", "cloud", "data", "science", "training", "media", "comm",
                     "router"]
Status = Literal["healthy", "degraded", "unhealthy", "offline"]
# The names of the routers' strategies: the router implements them (its Strategy objects),
# the controller stores the choice. A name, not the thing: hence not "Strategy".
# BasicStrategy: those that read nothing of the request (cache_aware's fallback is one).
BasicStrategy = Literal["round_robin", "least_connections", "load_based", "latency_based",
                        "random"]
StrategyName = Literal[BasicStrategy, "cache_aware"]
STRATEGY_NAMES: tuple[str, ...] = get_args(StrategyName)
# Who set a router's strategy. config and runtime fix it: the controller's no longer applies.
StrategySource = Literal["default", "config", "controller", "runtime"]

# The worker types that serve inference: routers route to them, the controller counts
# their models (routers, data, media, … workers register too).
INFERENCE_TYPES: frozenset[str] = frozenset({"inference", "cloud"})

# What an id starts with, per worker type: the controller assigns ids, a standalone member
# makes its own, both with its type's prefix (a type not listed here gets "wrk-").
ID_PREFIX: dict[str, str] = {"inference": "wrk-", "cloud": "cld-", "data": "dat-",
                             "science": "sci-", "training": "trn-", "media": "med-",
                             "comm": "com-", "router": "rtr-"}


def new_id(worker_type: str) -> str:
    """A fresh member id of this type: `wrk-3f9a0c1b2d4e`."""
    return f"{ID_PREFIX.get(worker_type, 'wrk-')}{secrets.token_hex(6)}"


class Load(msgspec.Struct, omit_defaults=False):
    """Reported load. GPU fields are null where no GPU can be read, never made up."""

    cpu_percent: float | None = None
    memory_percent: float | None = None
    gpu_percent: float | None = None
    gpu_memory_percent: float | None = None
    active_requests: int = 0
    max_concurrency: int | None = None


class BackendInfo(msgspec.Struct):
    type: str
    url: str
    healthy: bool = False


# The API families workers say whether they serve. A path outside them (a backend's own
# endpoint eldric has no table entry for, /v1/files, …) is sent to any worker, as it was
# before workers advertised paths: only what eldric knows about is routed by capability.
API_FAMILIES = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                "/v1/responses", "/v1/messages", "/v1/rerank", "/v1/score", "/v1/audio",
                "/v1/images",
                # Ollama's own API (/api/chat, /api/show, …): only to workers that say so
                # (routers never route the control plane's /api/v1/*)
                "/api")


def _under(path: str, family: str) -> bool:
    return path == family or (path.startswith(family) and path[len(family)] == "/")


def covers(paths: list[str] | tuple[str, ...], path: str) -> bool:
    """Whether one of `paths` is `path` or a family above it."""
    return any(_under(path, p) for p in paths)


def serves_path(paths: list[str] | None, path: str) -> bool:
    """Whether an upstream advertising `paths` serves `path`. An entry covers itself and
    everything under it (`/v1/responses` covers `/v1/responses/{id}/cancel`); None means
    not advertised (a plain OpenAI-compatible server, an older eldric): any path; and a
    path outside API_FAMILIES is taken to be served by anyone."""
    if paths is None:
        return True
    for p in paths:
        if _under(path, p):
            return True
    return not any(_under(path, family) for family in API_FAMILIES)


class WorkerHealth(msgspec.Struct, omit_defaults=False):
    """GET /health of a worker-like role (worker, cloud)."""

    status: Status
    worker_id: str | None
    worker_type: WorkerType
    backend: BackendInfo
    models: list[str]
    load: Load
    uptime_seconds: float
    version: str = ""
    # The API paths this worker serves (see serves_path); routers send a path only to
    # workers that serve it. None: not advertised, any path.
    paths: list[str] | None = None
    # Those of `paths` it serves by translating to its backend's Chat Completions (or
    # embeddings) rather than natively (eldric.wire.translated).
    translated: list[str] = []
    # What the controller may ask it to do with models (eldric.wire.models); None: no
    # model management (an older eldric, a provider that cannot pull).
    model_ops: ModelOps | None = None


class ModelForecast(msgspec.Struct, omit_defaults=False):
    """One model's load forecast at a router (its GET /api/v1/predict, and the summary in
    its heartbeat): requests per second observed in the last sample, expected `minutes`
    ahead with the band around it, and whether the observed rate left its band."""

    model: str
    observed_rps: float
    expected_rps: float
    low_rps: float
    high_rps: float
    minutes: int = 1
    anomaly: bool = False


class RouterReport(msgspec.Struct, omit_defaults=False):
    """What a router says about itself when it registers and heartbeats: the strategy it
    really uses and who set it, and its workers (the controller's dashboard shows them)."""

    # A str, not a StrategyName: a newer router's new strategy must not fail its heartbeat.
    strategy: str | None
    strategy_source: StrategySource
    workers: int = 0
    healthy_workers: int = 0
    # Its busiest models' forecasts (bounded), left out until there is one (or when
    # forecasting is off). Older controllers ignore the field, older routers send none.
    forecast: list[ModelForecast] | msgspec.UnsetType = msgspec.UNSET


class WorkerInfo(msgspec.Struct, omit_defaults=True):
    """POST /api/v1/workers/register body. `id` absent: the controller assigns one."""

    worker_type: WorkerType
    url: str
    id: str | None = None
    backend: BackendInfo | None = None
    models: list[str] = []
    tags: list[str] = []
    load: Load = msgspec.field(default_factory=Load)
    status: Status = "healthy"
    version: str = ""
    paths: list[str] | None = None  # as in WorkerHealth
    router: RouterReport | None = None  # worker_type "router" only
    model_ops: ModelOps | None = None  # as in WorkerHealth
    # the edge client whose key registered it through an edge (issue 18): set by the
    # edge, never by the worker (cluster_relay overwrites what a body says)
    contributed_by: str | None = None


class Heartbeat(msgspec.Struct, omit_defaults=False):
    """POST /api/v1/workers/{id}/heartbeat body. `backend` and `router`, when sent,
    replace what the controller holds (a backend that came up after registration)."""

    status: Status
    load: Load
    models: list[str] = []
    active_requests: int = 0
    backend: BackendInfo | None = None
    router: RouterReport | None = None


class RegisterReply(msgspec.Struct):
    id: str


class WorkerRecord(WorkerInfo, kw_only=True, omit_defaults=False):
    """A worker as the controller lists it: what it registered, plus what it observed."""

    last_heartbeat: float | None = None
    registered_at: float | None = None


def decode_strategy_body(body: bytes, kind: type[T]) -> T:
    """A body naming a strategy (the controller's router settings, a router's runtime
    change), decoded strictly: a strategy eldric does not know is a 400 invalid_strategy
    that lists those it does."""
    try:
        return decode_head(body, kind)
    except BadRequest as exc:
        if exc.param != "strategy":
            raise
        raise BadRequest(f"unknown strategy; one of: {', '.join(STRATEGY_NAMES)}",
                         param="strategy", code="invalid_strategy") from None


class RouterSettings(msgspec.Struct, omit_defaults=True):
    """The cluster's routing settings, stored at the controller, applied by routers. The
    controller takes only a strategy it knows; routers read them as ListedSettings."""

    strategy: StrategyName | None = None
    # cache_aware's own fallback (its cache_aware.fallback_strategy), for the issue's
    # "strategy: cache_aware with fallback_strategy: least_connections" set cluster-wide
    fallback_strategy: BasicStrategy | None = None


class WorkerList(msgspec.Struct):
    """GET /api/v1/workers at the controller (the router's sync reads both in one call).

    `version` names the registry's state (opaque; absent from controllers that cannot
    long-poll): `?since=VERSION&wait=MS` holds the reply until it changes."""

    workers: list[WorkerRecord] = []
    router_config: RouterSettings = msgspec.field(default_factory=RouterSettings)
    version: str | None = None


class ListedWorker(msgspec.Struct):
    """One worker of the controller's list as a router reads it: lenient where a newer
    controller may say more (a worker type or status this router does not know is
    skipped, not a failed sync that freezes its worker list)."""

    id: str | None = None
    url: str = ""
    worker_type: str = "inference"
    status: str = "healthy"
    models: list[str] = []
    tags: list[str] = []
    load: Load = msgspec.field(default_factory=Load)
    paths: list[str] | None = None


class ListedSettings(msgspec.Struct):
    """RouterSettings as a router reads them: a strategy an older or newer controller
    names that this router does not know is kept as text (the router logs it and keeps
    its own), never a failed sync."""

    strategy: str | None = None
    fallback_strategy: str | None = None

    @property
    def known_strategy(self) -> StrategyName | None:
        return self.strategy if self.strategy in STRATEGY_NAMES else None  # type: ignore[return-value]

    @property
    def known_fallback(self) -> BasicStrategy | None:
        known = get_args(BasicStrategy)
        return self.fallback_strategy if self.fallback_strategy in known else None  # type: ignore[return-value]


class WorkerListing(msgspec.Struct):
    """GET /api/v1/workers as a router reads it (WorkerList, leniently)."""

    workers: list[ListedWorker] = []
    router_config: ListedSettings = msgspec.field(default_factory=ListedSettings)
    version: str | None = None


class HealthHead(msgspec.Struct):
    """What a router reads from any upstream's /health: eldric workers send a full
    WorkerHealth; a plain vLLM sends an empty 200, which is fine too."""

    status: str = "healthy"
    load: Load | None = None
    models: list[str] | None = None
    paths: list[str] | None = None
