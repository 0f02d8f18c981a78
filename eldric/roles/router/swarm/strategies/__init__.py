"""The strategies, one file each; STRATEGIES maps a name to its Strategy."""

from __future__ import annotations

from eldric.roles.router.swarm.strategies.best_of_n import BestOfN
from eldric.roles.router.swarm.strategies.critique import Critique
from eldric.roles.router.swarm.strategies.debate import Debate
from eldric.roles.router.swarm.strategies.synthesize import Synthesize
from eldric.roles.router.swarm.strategies.vote import Vote
from eldric.roles.router.swarm.strategy import Strategy

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Synthesize(), BestOfN(), Vote(), Critique(), Debate())}
