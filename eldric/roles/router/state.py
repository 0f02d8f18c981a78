"""The router's run-time state, kept on its app under ROUTER."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from eldric.roles.router import strategies
from eldric.roles.router.cache.strategy import CacheAware
from eldric.roles.router.config import RouterConfig
from eldric.roles.router.pool import WorkerPool
from eldric.roles.router.swarm.recognise import Swarms
from eldric.roles.router.thinking import Thinking
from eldric.stream import Timeouts
from eldric.wire.cluster import BasicStrategy, StrategyName, StrategySource


@dataclass
class RouterState:
    cfg: RouterConfig
    pool: WorkerPool
    timeouts: Timeouts
    rr: strategies.RoundRobin = field(default_factory=strategies.RoundRobin)
    strategy: strategies.Strategy | None = None
    # Who set the strategy: default | config | controller | runtime. config and runtime
    # fix it: the controller's router_config no longer changes it.
    strategy_source: StrategySource = "default"
    swarms: Swarms = field(init=False)  # the swarm settings now (config, then runtime)
    # the response cache (eldric.replycache.hop.ReplyCache); None with --cache off. Not
    # `cache`: that is the cache-aware strategy's (below)
    replies: Any = None
    swarm_stats: Any = None  # eldric.roles.router.swarm.account.SwarmStats, made by build()
    # the scorers around the strategy: knowledge, AI, sessions (eldric.roles.router.thinking)
    thinking: Thinking = field(default_factory=Thinking)
    # the cache_aware strategy, made when first chosen and kept (its prefix trees) when
    # the strategy changes and back (eldric.roles.router.cache)
    cache: CacheAware | None = None
    batch: Any = None  # eldric.roles.router.batch.BatchStats, made by build()

    def __post_init__(self) -> None:
        self.swarms = Swarms(self.cfg.swarm, dict(self.cfg.ensembles))

    def set_strategy(self, name: StrategyName, source: StrategySource,
                     fallback: BasicStrategy | None = None) -> None:
        """`fallback`: cache_aware's fallback strategy, when the controller names one
        (else its cache_aware.fallback_strategy)."""
        if name == "cache_aware":
            if self.cache is None:
                self.cache = CacheAware(self.cfg.cache_aware, self.rr,
                                        self.pool.bus.metrics.registry)
            self.cache.fall_back_to(fallback or self.cfg.cache_aware.fallback_strategy, self.rr)
            self.strategy = self.cache
            chosen = self.cache.fallback  # load_based as its fallback: the same tie-break
        else:
            chosen = self.strategy = strategies.make(name, self.rr)
        if isinstance(chosen, strategies.LoadBased):
            chosen.demand = self.thinking.forecast  # its tie-break (None: off)
        self.strategy_source = source

    @property
    def strategy_fixed(self) -> bool:
        return self.strategy_source in ("config", "runtime")

    def model_ids(self) -> list[str]:
        """What GET /v1/models lists: every model a healthy worker serves, then aliases,
        then the named ensembles."""
        served = self.pool.models()
        more = [*self.cfg.aliases, *self.swarms.ensembles]
        return served + [a for a in dict.fromkeys(more) if a not in served]


ROUTER: web.AppKey[RouterState] = web.AppKey("eldric_router", RouterState)
