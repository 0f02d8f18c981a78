"""The router's settings (file section "router", env ELDRIC_ROUTER_*, flags)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from eldric.cluster.config import MemberConfig
from eldric.config import Ms, flag_meta
from eldric.replycache.config import CacheConfig
from eldric.roles.router.ai.config import AiRoutingConfig
from eldric.roles.router.cache.config import CacheAwareConfig
from eldric.roles.router.knowledge.config import KnowledgeConfig
from eldric.roles.router.predict.config import PredictConfig
from eldric.roles.router.swarm.config import Ensemble, SwarmConfig
from eldric.wire.cluster import StrategyName  # one list, shared with the controller


class WorkerSpec(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    tags: list[str] = []


def parse_workers(text: str) -> list[dict]:
    """--workers http://a:8890,http://b:8890"""
    return [{"url": u.strip()} for u in text.split(",") if u.strip()]


class RouterConfig(MemberConfig, kw_only=True, forbid_unknown_fields=True):
    """A router is a cluster member too (MemberConfig: it registers and heartbeats as
    worker type "router", so the controller sees it and the strategy it really uses)."""

    workers: Annotated[list[WorkerSpec], flag_meta(
        "static workers, URL,URL,… (config: [{url, tags}])", parse=parse_workers)] = []
    controller_url: Annotated[str | None, flag_meta(
        "controller to register with and to follow for workers and routing settings",
        flag="controller")] = None
    admin_key: Annotated[str | None, flag_meta(
        "key required by POST /api/v1/config")] = None
    sync_interval_ms: Annotated[Ms, flag_meta("controller sync period, ms")] = 30_000
    health_check_interval_ms: Annotated[Ms, flag_meta(
        "worker health check period, ms", flag="health-interval")] = 30_000
    # None: not fixed here, so the controller's router_config (or load_based) applies.
    strategy: Annotated[StrategyName | None, flag_meta(
        "round_robin, least_connections, load_based (default), latency_based, random, "
        "cache_aware")] = None
    max_failures: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "5xx replies in a row that take a worker out of rotation")] = 3
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20), flag_meta(
        "workers tried for one request before giving up")] = 3
    max_concurrency: Annotated[Annotated[int, msgspec.Meta(ge=1)] | None, flag_meta(
        "in-flight cap per worker when it reports none")] = None
    queue_timeout_ms: Annotated[Ms, flag_meta(
        "how long a request waits for a free worker before 503, ms")] = 30_000
    max_queue: Annotated[int, msgspec.Meta(ge=0), flag_meta(
        "requests that may wait for a free worker at once; more get 503 at once")] = 1000
    # batch priority (eldric.wire.priority): such a request takes only idle capacity
    batch_slots: Annotated[int, msgspec.Meta(ge=0), flag_meta(
        "batch-priority requests one worker may hold at once (0: batch never admitted)")] = 1
    batch_wait_ms: Annotated[Ms, flag_meta(
        "how long a batch-priority request waits for idle capacity before 503 "
        "batch_deferred, ms")] = 2_000
    aliases: Annotated[dict[str, str], flag_meta(
        'client model name -> served model, JSON: {"gpt-4o": "llama3.2:3b"}',
        flag="aliases")] = {}
    fallbacks: Annotated[dict[str, list[str]], flag_meta(
        'model -> models to try in order when it cannot be served, JSON: {"a": ["b"]}',
        flag="fallbacks")] = {}
    # the swarm (eldric.roles.router.swarm): what `swarm` means, its bounds, and the
    # named ensembles clients ask for by name as a model
    swarm: SwarmConfig = msgspec.field(default_factory=SwarmConfig)
    ensembles: Annotated[dict[str, Ensemble], flag_meta(
        'named swarms, JSON: {"smart": {"strategy": "best_of_n", "members": ["a", "b"]}}',
        flag="ensembles")] = {}
    # the scorers around the strategy (eldric.roles.router.thinking), each its own room
    ai_routing: AiRoutingConfig = msgspec.field(default_factory=AiRoutingConfig)
    knowledge: KnowledgeConfig = msgspec.field(default_factory=KnowledgeConfig)
    cache_aware: CacheAwareConfig = msgspec.field(default_factory=CacheAwareConfig)
    # the response cache (eldric/replycache/): off unless --cache exact|semantic
    cache: CacheConfig = msgspec.field(default_factory=CacheConfig)
    predict: PredictConfig = msgspec.field(default_factory=PredictConfig)
