"""The edge's run-time state, kept on its app under EDGE."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from eldric.roles.edge.clients import Clients
from eldric.roles.edge.config import EdgeConfig
from eldric.roles.edge.farm import Farm
from eldric.roles.edge.metrics import EdgeMetrics
from eldric.roles.edge.plugins.host import Plugins
from eldric.roles.edge.routers import Routers
from eldric.roles.edge.usage.budgets import Budgets
from eldric.roles.edge.usage.budgets_saved import Saved
from eldric.roles.edge.usage.face import Usage
from eldric.roles.edge.usage.store import Recorder
from eldric.stream import Timeouts


@dataclass
class EdgeState:
    cfg: EdgeConfig
    timeouts: Timeouts
    routers: Routers
    clients: Clients  # the admin API's; lookups go through farm
    farm: Farm  # keys and limits through the store, surviving its outages
    metrics: EdgeMetrics
    tls: bool
    require_key: bool
    plugins: Plugins
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    # usage, spend and budgets per client (usage/): budgets always exist; usage and its
    # recorder are None with --usage off (then the request path is as without it)
    budgets: Budgets = field(default_factory=Budgets)
    recorder: Recorder | None = None
    usage: Usage | None = None
    # the response cache (eldric.replycache.hop.ReplyCache); None with --cache off
    cache: Any = None
    saved: Saved | None = None  # standalone: the budgets' counts kept in edge.db


EDGE: web.AppKey[EdgeState] = web.AppKey("eldric_edge", EdgeState)
