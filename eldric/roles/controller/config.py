"""The controller's settings (file section "controller", env ELDRIC_CONTROLLER_*, flags)."""

from __future__ import annotations

from typing import Annotated

import msgspec

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
    # Model jobs (eldric.roles.controller.jobs): pulls, distributions, deletions.
    pull_concurrency: Annotated[int, msgspec.Meta(ge=1, le=1000), flag_meta(
        "model operations (pulls, installs) the controller runs at once, over every job")] = 4
    job_history: Annotated[int, msgspec.Meta(ge=1, le=100_000), flag_meta(
        "finished model jobs kept (newest first); older ones are forgotten")] = 100
    pull_idle_timeout_ms: Annotated[Ms, flag_meta(
        "a worker's progress stream silent this long is re-attached to, ms")] = 30_000
    pull_stall_timeout_ms: Annotated[Ms, flag_meta(
        "a model operation that makes no progress this long fails (and is cancelled on "
        "the worker), ms")] = 600_000
