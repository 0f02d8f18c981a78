"""The edge's run-time state, kept on its app under EDGE."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from eldric.roles.edge.config import EdgeConfig
from eldric.roles.edge.routers import Routers
from eldric.stream import Timeouts


@dataclass
class EdgeState:
    cfg: EdgeConfig
    timeouts: Timeouts
    routers: Routers
    clients: Any  # LocalClients | RedisClients (admin API; lookups go through farm)
    tls: bool
    require_key: bool
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    metrics: Any = None  # EdgeMetrics
    farm: Any = None  # Farm: keys and limits through the store, surviving its outages


EDGE: web.AppKey[EdgeState] = web.AppKey("eldric_edge", EdgeState)
