"""The cloud worker's run-time state, kept on its app under CLOUD."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from eldric.roles.cloud.backends import Backend
from eldric.roles.cloud.config import CloudConfig
from eldric.stream import Timeouts


@dataclass
class CloudState:
    cfg: CloudConfig
    timeouts: Timeouts
    backends: dict[str, Backend]
    metrics: Any  # CloudMetrics
    env: dict[str, str]
    membership: Any = None  # eldric.cluster.membership.Membership

    def ordered(self) -> list[Backend]:
        return sorted(self.backends.values(), key=lambda b: (b.priority, b.name))

    def models(self) -> list[tuple[str, Backend]]:
        """(model, backend) for every model an enabled backend lists, best priority first."""
        return [(m, b) for b in self.ordered() if b.enabled for m in b.models]


CLOUD: web.AppKey[CloudState] = web.AppKey("eldric_cloud", CloudState)
