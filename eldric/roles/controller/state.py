"""The controller's run-time state, kept on its app under CONTROLLER."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from eldric.roles.controller.config import ControllerConfig
from eldric.roles.controller.registry import Registry

if TYPE_CHECKING:
    from eldric.roles.controller.jobs import Jobs


@dataclass
class ControllerState:
    cfg: ControllerConfig
    registry: Registry
    jobs: Jobs


CONTROLLER: web.AppKey[ControllerState] = web.AppKey("eldric_controller", ControllerState)
