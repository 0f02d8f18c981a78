"""Small per-role and per-request records shared by the middleware, stream/ and roles."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


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
