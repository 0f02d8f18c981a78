"""What the eviction round does to the strategy's trees, and SGLang's imbalance test."""

from __future__ import annotations

import json

from eldric.bus import Bus
from eldric.roles.router.cache.config import CacheAwareConfig
from eldric.roles.router.cache.strategy import CacheAware, imbalanced
from eldric.roles.router.context import RouteContext
from eldric.roles.router.pool import WorkerPool
from eldric.roles.router.strategies import RoundRobin


class _Req:
    path, headers = "/v1/chat/completions", {}


def _ctx(text: str) -> RouteContext:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]})
    return RouteContext(_Req(), body.encode(), "m")  # type: ignore[arg-type]


def test_workers_that_left_are_forgotten_and_trees_cut_back():
    bus = Bus()
    pool = WorkerPool(bus, role="router")
    a, b = pool.add("a", "http://127.0.0.1:1"), pool.add("b", "http://127.0.0.1:2")
    cache = CacheAware(CacheAwareConfig(tree_max_chars=1024), RoundRobin(), bus.metrics.registry)
    cache.chosen(a, _ctx("x" * 900))
    for i in range(2):  # 1806 chars: over the bound, under twice it
        cache.chosen(b, _ctx(f"{i}" * 900))
    tree = cache.trees["m"]
    assert set(tree.chars) == {"a", "b"} and tree.chars["b"] > 1024
    freed = cache.maintain(["b"])  # a left the pool
    assert set(tree.chars) == {"b"} and tree.chars["b"] <= 1024 and freed > 0
    ranked, why = cache.rank([a, b], _ctx("x" * 900))
    assert why.startswith("cache_aware: prefix match 0.0")  # a's prompt is gone with it


def test_imbalance_needs_both_gaps():
    cfg = CacheAwareConfig()  # 64 and 1.5, SGLang's defaults
    assert not imbalanced(70, 10, cfg)  # 60 apart: under the absolute gap
    assert not imbalanced(200, 140, cfg)  # 60 apart and 1.43x
    assert imbalanced(100, 20, cfg)  # 80 apart and 5x
    assert not imbalanced(300, 230, cfg)  # 70 apart but only 1.3x
