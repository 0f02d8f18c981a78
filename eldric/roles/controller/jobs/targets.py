"""Which workers a job runs on, and why each of the others is skipped.

Pure: the registry's records in, (worker id, reason or None) out. A job lists every
worker it did not run on with the reason (offline, a data worker, a backend that cannot
pull), so "pull to all" that reached three of five says why not the other two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from eldric.wire.cluster import INFERENCE_TYPES, WorkerRecord
from eldric.wire.models import ModelOps
from eldric.wire.tunnel import is_tunnel

# Can this worker's backend do the job's operation? None: yes; else why not.
Able = Callable[[WorkerRecord, ModelOps], str | None]


def can_pull(kind: str) -> Able:
    def able(w: WorkerRecord, ops: ModelOps) -> str | None:
        if kind in ops.pull:
            return None
        if not ops.pull:
            return "its backend cannot pull models"
        return f"its backend cannot pull {'by name' if kind == 'ollama' else 'from a URL'}"
    return able


def can_install(w: WorkerRecord, ops: ModelOps) -> str | None:
    return None if ops.install else "its backend cannot install model files"


def can_delete(w: WorkerRecord, ops: ModelOps) -> str | None:
    return None if ops.delete else "its backend cannot delete models"


def choose(workers: dict[str, WorkerRecord], able: Able, *, ids: list[str] | None = None,
           backend_types: list[str] | None = None,
           also: Callable[[WorkerRecord], str | None] | None = None
           ) -> list[tuple[str, str | None]]:
    """Every worker asked for (`ids`, or every registered one but routers), each with
    the reason it is skipped or None. `also`: the job's own reason to skip (it has the
    model already, it is the source)."""
    chosen: Iterable[str] = ids if ids is not None else sorted(
        wid for wid, w in workers.items() if w.worker_type != "router")
    out: list[tuple[str, str | None]] = []
    for wid in dict.fromkeys(chosen):  # once each, in the order given
        w = workers.get(wid)
        out.append((wid, "unknown worker" if w is None else _why_not(w, able, backend_types,
                                                                     also)))
    return out


def _why_not(w: WorkerRecord, able: Able, backend_types: list[str] | None,
             also: Callable[[WorkerRecord], str | None] | None) -> str | None:
    if w.worker_type not in INFERENCE_TYPES:
        return f"a {w.worker_type} worker serves no models"
    if w.status == "offline":
        return "offline"
    if is_tunnel(w.url):
        return "reached via tunnel: the controller cannot call it (it is behind NAT)"
    backend = w.backend.type if w.backend is not None else None
    if backend_types is not None and backend not in backend_types:
        return f"its backend ({backend or 'unknown'}) is not one of backend_types"
    if w.model_ops is None:
        return "it does not manage models (an older eldric, or a backend that cannot)"
    return able(w, w.model_ops) or (also(w) if also is not None else None)
