"""Which backend serves a model: explicit `backend/model`, else the best-priority healthy
backend listing it, else --default-backend; the others that list it follow in order, for
failover before the first byte."""

from __future__ import annotations

from eldric.errors import ModelNotFound, UpstreamUnavailable
from eldric.roles.cloud.backends import Backend
from eldric.roles.cloud.state import CloudState


def candidates(cs: CloudState, model: str) -> list[tuple[Backend, str]]:
    """[(backend, the model name to send it)], best first. Raises 404 or 503."""
    name, sep, rest = model.partition("/")
    if sep and name in cs.backends and cs.backends[name].enabled:
        chosen = [(cs.backends[name], rest)]
    else:
        chosen = [(b, model) for b in cs.ordered() if b.enabled and model in b.models]
        if not chosen and cs.cfg.default_backend in cs.backends:
            chosen = [(cs.backends[cs.cfg.default_backend], model)]  # type: ignore[index]
    if not chosen:
        raise ModelNotFound(f"the model {model!r} is not offered by any backend of this "
                            "cloud worker; GET /v1/models lists those that are",
                            param="model")
    healthy = [c for c in chosen if c[0].state.healthy]
    if not healthy:
        b = chosen[0][0]
        why = "its API key is refused" if b.auth_failed else (b.state.last_error or "unhealthy")
        raise UpstreamUnavailable(f"backend {b.name} for {model!r} is unavailable: {why}")
    return healthy
