"""The controller's settings (file section "controller", env ELDRIC_CONTROLLER_*, flags)."""

from __future__ import annotations

from typing import Annotated

from eldric.config import Ms, RoleConfig, flag_meta


class ControllerConfig(RoleConfig, kw_only=True, forbid_unknown_fields=True):
    cluster_key: Annotated[str | None, flag_meta(
        "key workers must present to register and heartbeat")] = None
    admin_key: Annotated[str | None, flag_meta(
        "key required to delete workers and change the router configuration")] = None
    worker_timeout_ms: Annotated[Ms, flag_meta(
        "a worker silent this long is marked offline (not routed to), ms")] = 90_000
    worker_expiry_ms: Annotated[Ms, flag_meta(
        "a worker silent this long is dropped from the registry, ms")] = 600_000
    flush_interval_ms: Annotated[Ms, flag_meta(
        "heartbeats are written to disk in batches this often, ms")] = 1_000
