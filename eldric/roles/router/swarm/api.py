"""GET /api/v1/swarm: the strategies, the swarm settings, the named ensembles, and the
stats per strategy; and the swarm part of POST /api/v1/config."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import BadRequest
from eldric.roles.router.state import ROUTER, RouterState
from eldric.roles.router.swarm.config import Ensemble, SwarmConfig, member_spec
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
    check(ens, cfg)
    rs.swarms = Swarms(cfg, dict(ens))


def check(ensembles: dict[str, Ensemble], cfg: SwarmConfig) -> None:
    """Ensembles that could never answer are refused where they are set (the config file,
    POST /api/v1/config), not on every request for them: a name a swarm model name would
    shadow, more members than max_members, fewer than the strategy needs, or a member or
    judge that is a swarm itself (members are routed to workers: never a swarm)."""
    swarm_names = {"swarm", *ensembles}
    for name, ens in ensembles.items():
        if name == "swarm" or name.startswith("swarm/") or not name:
            raise BadRequest(f"ensemble name {name!r}: `swarm` and `swarm/...` are the "
                             "strategies' own names", param="ensembles", code="invalid_swarm")
        if len(ens.members) > cfg.max_members:
            raise BadRequest(f"ensemble {name!r}: {len(ens.members)} members; at most "
                             f"{cfg.max_members} (swarm.max_members)", param="ensembles",
                             code="invalid_swarm")
        least = STRATEGIES[ens.strategy].min_members if ens.strategy in STRATEGIES else 1
        if ens.members and len(ens.members) < least:
            raise BadRequest(f"ensemble {name!r}: swarm/{ens.strategy} needs at least "
                             f"{least} members; it has {len(ens.members)}",
                             param="ensembles", code="invalid_swarm")
        for m in [*ens.members, *([ens.judge] if ens.judge is not None else [])]:
            model = member_spec(m).model
            if model in swarm_names or model.startswith("swarm/"):
                raise BadRequest(f"ensemble {name!r}: {model!r} is a swarm, not a model "
                                 "a member or judge can be", param="ensembles",
                                 code="invalid_swarm")
