"""Every typed key for shared state on an aiohttp Application or Request.

Keeping them in one module is what lets roles, stream/ and bus/ share state without string
keys or module-level globals.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from eldric.bus import Bus
    from eldric.bus.prober import Prober
    from eldric.config import ProcessConfig
    from eldric.context import Hop, RoleInfo
    from eldric.model_registry import ModelRegistry
    from eldric.store.responses import Responses
    from eldric.stream.pool import ConnectionPool

# Process-wide (the same objects in every role's app of one process).
BUS: web.AppKey["Bus"] = web.AppKey("eldric_bus")
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("eldric_session", aiohttp.ClientSession)
# The forwarding core's keep-alive pool (eldric.stream.pool); SESSION is for the rest.
UPSTREAM: web.AppKey["ConnectionPool"] = web.AppKey("eldric_upstream")
PROCESS: web.AppKey["ProcessConfig"] = web.AppKey("eldric_process")

# Per role app.
ROLE: web.AppKey["RoleInfo"] = web.AppKey("eldric_role")
CONFIG: web.AppKey[Any] = web.AppKey("eldric_config")
# A role may replace how /health is answered (the worker answers a WorkerHealth).
HEALTH: web.AppKey[Any] = web.AppKey("eldric_health")
# With --processes N > 1: this process's eldric.processes.Plan (its index, the private
# sockets' directory); absent with one process.
PLAN: web.AppKey[Any] = web.AppKey("eldric_processes_plan")
# What a --processes child re-reads when its primary changed the role's state through an
# admin call (eldric.processes.refresh): async callables.
REFRESH: web.AppKey[list[Any]] = web.AppKey("eldric_processes_refresh")
# What the role probes every health interval (its workers, routers, backends).
PROBER: web.AppKey["Prober[Any]"] = web.AppKey("eldric_prober")
# Set when the process starts to stop (listeners closed, before in-flight requests
# drain): a role ends what would hold the drain (long-polls) or what should end first
# (telling the controller it is going offline).
STOPPING: web.AppKey[asyncio.Event] = web.AppKey("eldric_stopping", asyncio.Event)
# The stored responses of /v1/responses (eldric.store.responses), on a role that keeps them.
RESPONSES: web.AppKey["Responses"] = web.AppKey("eldric_responses")
# The model files the role serves to the fleet (eldric.model_registry), when it has them.
MODEL_REGISTRY: web.AppKey["ModelRegistry"] = web.AppKey("eldric_model_registry")

# Per request.
HOP: web.RequestKey["Hop"] = web.RequestKey("eldric_hop")
