"""The `cache_aware` strategy: send a prompt where its prefix is probably cached.

SGLang's router's contract, with its knobs: when the load is imbalanced (the busiest
candidate has more than balance_abs_threshold requests in flight beyond the idlest AND
more than balance_rel_threshold times the idlest's), the least loaded gets the request;
else the worker whose share of the model's prefix tree matches the most of the prompt
gets it when the match rate (matched / prompt characters) exceeds cache_threshold; else
the fallback strategy decides (least_connections by default; where SGLang sends a miss
to the worker with the smallest tree). Every request teaches the tree where it went
(chosen()), whoever decided. The reason names the match rate or the imbalance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import Counter, Gauge

from eldric.roles.router.cache.config import CacheAwareConfig
from eldric.roles.router.cache.tree import Tree
from eldric.roles.router.context import RouteContext
from eldric.roles.router.pool import Worker
from eldric.roles.router.strategies import Base, Ranking, RoundRobin, make


def imbalanced(active: int, least: int, cfg: CacheAwareConfig) -> bool:
    """SGLang's test: both the absolute and the relative gap are over their thresholds."""
    return active - least > cfg.balance_abs_threshold and \
        active > cfg.balance_rel_threshold * least


class CacheAware(Base):
    name = "cache_aware"

    def __init__(self, cfg: CacheAwareConfig, rr: RoundRobin, registry: object) -> None:
        self.cfg = cfg
        self.fallback = make(cfg.fallback_strategy, rr)
        self.trees: dict[str | None, Tree] = {}  # per model (None: requests naming none)
        rankings = Counter("eldric_cache_aware_rankings", "cache_aware rankings by outcome: "
                           "hit (best prefix match), miss (fallback strategy), imbalanced "
                           "(least loaded)", ["outcome"], registry=registry)
        self._hit, self._miss, self._imbalanced = (
            rankings.labels(o) for o in ("hit", "miss", "imbalanced"))
        self.tree_chars = Gauge("eldric_cache_tree_chars", "Characters the prefix trees hold "
                                "(all models and workers), as of the last eviction round",
                                registry=registry)

    def fall_back_to(self, name: str, rr: RoundRobin) -> None:
        if self.fallback.name != name:
            self.fallback = make(name, rr)

    def rank(self, candidates: Sequence[Worker], ctx: RouteContext | None = None) -> Ranking:
        ordered, why = self.fallback.rank(candidates, ctx)
        most = least = ordered[0].state.active
        for w in ordered:
            a = w.state.active
            most, least = max(most, a), min(least, a)
        if imbalanced(most, least, self.cfg):
            self._imbalanced.inc()
            ordered = sorted(ordered, key=lambda w: w.state.active)  # the fallback's ties
            return ordered, (f"cache_aware: load imbalanced ({most} vs {least} in flight); "
                             f"least loaded")
        tree = self.trees.get(ctx.model) if ctx is not None else None
        text = ctx.prompt(self.cfg.prompt_max_chars) if tree is not None else ""
        if not text:
            self._miss.inc()
            return ordered, f"cache_aware: nothing cached for this model yet; {why}"
        ids = {w.id: w for w in ordered}
        matched, holders = tree.match(text, ids)  # type: ignore[union-attr]
        rate = matched / len(text)
        if rate > self.cfg.cache_threshold:
            # of the workers holding the whole match, the least busy
            best = min((ids[t] for t in holders), key=lambda w: w.state.active)
            self._hit.inc()
            return [best, *(w for w in ordered if w is not best)], \
                f"cache_aware: prefix match {rate:.2f} on {best.id}"
        self._miss.inc()
        return ordered, (f"cache_aware: prefix match {rate:.2f} <= "
                         f"{self.cfg.cache_threshold:g}; {why}")

    def chosen(self, worker: Worker, ctx: RouteContext) -> None:
        text = ctx.prompt(self.cfg.prompt_max_chars)
        if not text:
            return
        tree = self.trees.get(ctx.model)
        if tree is None:
            tree = self.trees[ctx.model] = Tree(self.cfg.tree_max_chars)
        fresh = tree.insert(text, worker.id)
        ctx.learned = None if fresh is None else (tree, worker.id, fresh)

    def failed(self, worker: Worker, ctx: RouteContext) -> None:
        """The attempt on `worker` failed: it does not cache what chosen() taught the
        tree (the next turn must not be sent there for a cache it lacks)."""
        learned = ctx.learned
        if learned is not None and learned[1] == worker.id:
            learned[0].forget(ctx.prompt(self.cfg.prompt_max_chars), worker.id, learned[2])
            ctx.learned = None

    def maintain(self, workers: Iterable[str]) -> int:
        """The eviction round: forget workers that left, cut each tree back to its bound;
        the characters evicted."""
        known = set(workers)
        freed = 0
        total = 0
        for tree in self.trees.values():
            for tenant in tree.tenants():
                if tenant not in known:
                    tree.remove(tenant)
            freed += tree.evict()
            total += sum(tree.chars.values())
        self.tree_chars.set(total)
        return freed
