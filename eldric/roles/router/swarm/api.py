"""GET /api/v1/swarm: the strategies, the swarm settings, the named ensembles, and the
stats per strategy; and the swarm part of POST /api/v1/config."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import BadRequest
from eldric.roles.router.state import ROUTER, RouterState
from eldric.roles.router.swarm.config import Ensemble, SwarmConfig
from eldric.roles.router.swarm.recognise import Swarms
from eldric.roles.router.swarm.strategies import STRATEGIES


def settings(rs: RouterState) -> dict[str, Any]:
    """The swarm section and ensembles as they are now (GET /api/v1/config shows them)."""
    return {"swarm": msgspec.to_builtins(rs.swarms.cfg),
            "ensembles": msgspec.to_builtins(rs.swarms.ensembles)}


async def view(request: web.Request) -> web.Response:
    rs = request.app[ROUTER]
    return json_response({
        "strategies": [{"name": s.name, "description": s.description,
                        "min_members": s.min_members} for s in STRATEGIES.values()],
        **settings(rs),
        "stats": rs.swarm_stats.view() if rs.swarm_stats is not None else {}})


def apply(rs: RouterState, swarm: SwarmConfig | None,
          ensembles: dict[str, Ensemble] | None) -> None:
    """A runtime change of the swarm section and/or the ensembles (each replaced whole)."""
    cfg = rs.swarms.cfg if swarm is None else swarm
    ens = rs.swarms.ensembles if ensembles is None else ensembles
    check(ens)
    rs.swarms = Swarms(cfg, dict(ens))


def check(ensembles: dict[str, Ensemble]) -> None:
    """Ensemble names a swarm model name would shadow are refused."""
    for name in ensembles:
        if name == "swarm" or name.startswith("swarm/") or not name:
            raise BadRequest(f"ensemble name {name!r}: `swarm` and `swarm/...` are the "
                             "strategies' own names", param="ensembles", code="invalid_swarm")
