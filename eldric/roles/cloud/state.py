"""The cloud worker's run-time state, kept on its app under CLOUD."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from eldric.cluster.membership import Membership
from eldric.roles.cloud.backends import Backend
from eldric.roles.cloud.config import CloudConfig
from eldric.roles.cloud.metrics import CloudMetrics
from eldric.stream import Timeouts


@dataclass
class CloudState:
    cfg: CloudConfig
    timeouts: Timeouts
    backends: dict[str, Backend]
    metrics: CloudMetrics
    env: dict[str, str]
    membership: Membership | None = None  # set at start-up

    def ordered(self) -> list[Backend]:
        return sorted(self.backends.values(), key=lambda b: (b.priority, b.name))

    def models(self) -> list[tuple[str, Backend]]:
        """(model, backend) for every model an enabled backend lists, best priority first."""
        return [(m, b) for b in self.ordered() if b.enabled for m in b.models]


CLOUD: web.AppKey[CloudState] = web.AppKey("eldric_cloud", CloudState)
