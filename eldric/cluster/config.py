"""Settings every role that joins a cluster (worker, cloud, router) has."""

from __future__ import annotations

from typing import Annotated

import msgspec

from eldric.config import Ms, RoleConfig, flag_meta
from eldric.store.responses import ResponsesConfig


class MemberConfig(RoleConfig, kw_only=True, forbid_unknown_fields=True):
    controller_url: Annotated[str | None, flag_meta(
        "controller to register and heartbeat with", flag="controller")] = None
    api_key: Annotated[str | None, flag_meta(
        "the cluster key the controller demands on register/heartbeat")] = None
    heartbeat_interval_ms: Annotated[Ms, flag_meta("heartbeat period, ms")] = 30_000
    worker_id: Annotated[str | None, flag_meta(
        "fixed worker id (default: kept in --data-dir across restarts)")] = None
    tags: Annotated[list[str], flag_meta(
        "labels registered with the controller (routers can select workers on them)")] = []
    # /v1/responses state, kept when this role is the request's first eldric hop
    responses: ResponsesConfig = msgspec.field(default_factory=ResponsesConfig)
