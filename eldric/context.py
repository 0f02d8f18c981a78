"""Small per-role and per-request records shared by the middleware, stream/ and roles."""

from __future__ import annotations

import time
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


@dataclass(slots=True)
class RoleInfo:
    name: str
    advertise_url: str
    started: float = field(default_factory=time.time)
    active: int = 0  # requests being handled now (read by /metrics at scrape time)


@dataclass(slots=True)
class Hop:
    """What one request did at this hop; the access log line and metrics read it."""

    request_id: str
    role: str
    started: float  # perf_counter()
    model: str | None = None
    upstream: str | None = None
    ttfb: float | None = None  # seconds from arrival to the first byte sent to the client


def data_file(app: web.Application, name: str) -> str:
    """A role's own file in --data-dir, named for the role and its port
    (`controller-8880.db`, `worker-8890.id`), so several roles share one directory."""
    from eldric import keys  # keys imports this module's types

    port = app[keys.ROLE].advertise_url.rsplit(":", 1)[-1]
    stem, _, ext = name.partition(".")
    return os.path.join(app[keys.PROCESS].data_dir, f"{stem}-{port}.{ext}")
