"""Which requests are swarms: a model named `swarm` or `swarm/<strategy>`, a named
ensemble, or an X-Eldric-Swarm header (its value: a strategy or an ensemble; empty or
"1": the default strategy). A normal request pays one set lookup on its decoded model
name, one prefix test and a scan of its raw header names for the header (no decoding)."""

from __future__ import annotations

from dataclasses import dataclass

from eldric.errors import BadRequest
from eldric.roles.router.swarm.config import STRATEGIES, Ensemble, SwarmConfig

HEADER = b"x-eldric-swarm"
PREFIX = "swarm/"


@dataclass(frozen=True, slots=True)
class Plan:
    """A recognised swarm: its strategy, the ensemble if one was named, the name the
    client used, and the model a header swarm was asked for (its first member)."""

    strategy: str
    label: str
    ensemble: Ensemble | None = None
    model: str | None = None


class Swarms:
    """The router's swarm settings as they are now (config, then POST /api/v1/config)."""

    def __init__(self, cfg: SwarmConfig, ensembles: dict[str, Ensemble]) -> None:
        self.cfg = cfg
        self.ensembles = ensembles
        self.names = frozenset(("swarm", *ensembles))  # the model names that are swarms

    def plan(self, model: str | None, raw_headers: object) -> Plan | None:
        """The swarm this request asks for, or None (a normal request)."""
        if model is not None and (model in self.names or model[:6] == PREFIX):
            return self._by_name(model)
        for pair in raw_headers:  # type: ignore[attr-defined]
            if len(pair[0]) == 14 and pair[0].lower() == HEADER:  # 14: len(HEADER)
                return self._by_header(pair[1].decode("latin-1").strip(), model)
        return None

    def named(self, model: str | None) -> bool:
        """Whether a model name is a swarm's (the other client APIs refuse it)."""
        return model is not None and (model in self.names or model[:6] == PREFIX)

    def _by_name(self, model: str) -> Plan:
        ens = self.ensembles.get(model)
        if ens is not None:
            return Plan(ens.strategy, model, ens)
        if model == "swarm":
            return Plan(self.cfg.default_strategy, model)
        strategy = model[len(PREFIX):]
        if strategy not in STRATEGIES:
            raise BadRequest(f"unknown swarm strategy {strategy!r}; one of: "
                             f"{', '.join(STRATEGIES)}", param="model", code="invalid_swarm")
        return Plan(strategy, model)

    def _by_header(self, value: str, model: str | None) -> Plan:
        if value in ("", "1", "true", "yes"):
            return Plan(self.cfg.default_strategy, model or "swarm", model=model)
        ens = self.ensembles.get(value)
        if ens is not None:
            return Plan(ens.strategy, value, ens, model)
        if value not in STRATEGIES:
            raise BadRequest(f"X-Eldric-Swarm names no strategy or ensemble: {value!r}; "
                             f"strategies: {', '.join(STRATEGIES)}; ensembles: "
                             f"{', '.join(self.ensembles) or 'none'}", param="X-Eldric-Swarm",
                             code="invalid_swarm")
        return Plan(value, model or "swarm", model=model)
