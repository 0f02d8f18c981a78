"""Synthetic request-rate series with a known truth: Poisson counts per sample around a
rate that ramps, steps or stays, as a router's counter would see them."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

DT = 10.0  # seconds per sample, the router's default


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson count (Knuth's method; the means here stay far below its limits)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def observed(rate: Callable[[int], float], n: int, seed: int, dt: float = DT) -> list[float]:
    """n samples of requests/s: a Poisson count over dt seconds at rate(i), over dt."""
    rng = random.Random(seed)
    return [poisson(rng, rate(i) * dt) / dt for i in range(n)]
