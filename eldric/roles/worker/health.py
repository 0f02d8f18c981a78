"""The worker's view of its backend: periodic probes and the WorkerHealth it reports."""

from __future__ import annotations

import functools
import time

import structlog
from aiohttp import web

from eldric import __version__, keys
from eldric.backends import call as native_call
from eldric.bus import UpstreamState
from eldric.bus.prober import HEALTHY, Prober, Verdict, on_bus
from eldric.modelops.routes import model_ops
from eldric.roles.worker.backends import parse_models
from eldric.roles.worker.ollama_api import ANSWERED
from eldric.roles.worker.state import WORKER, WorkerState
from eldric.wire.cluster import BackendInfo, Load, WorkerHealth, covers
from eldric.wire.translated import translatable

log = structlog.get_logger("eldric.worker")

PROBE_TIMEOUT = 10.0  # a native kind's probe request (the others use the session's)
# What the operator fixes when the backend refuses the worker's key (its probe's 401/403)
REFUSED_HINT = "check --backend-api-key (a native kind's credentials: --backend-options)"


async def probe(app: web.Application, up: UpstreamState) -> Verdict:
    """Ask the backend for its model list: that is both the health check and the models."""
    st = app[WORKER]
    if st.models is not None and st.models.current is None:
        # the embedded backend between unloading one model and loading the next: no
        # llama.cpp to ask, the worker itself is fine
        up.models = st.models.rescan()
        return HEALTHY
    if st.kind.adapter is not None:  # a native API: its adapter's model list or health
        found = await native_call.probe(app, st.kind.adapter, st.reach, PROBE_TIMEOUT)
        if found.status in (401, 403):
            raise ValueError(f"{found.error}: {REFUSED_HINT}")
        if found.status != 200 or found.models is None:
            raise ValueError(found.error)
        up.models = found.models
        return HEALTHY
    async with app[keys.SESSION].get(st.backend_url + st.kind.models_path,
                                     headers=st.target.headers if st.target else None) as resp:
        body = await resp.read()
        if resp.status in (401, 403):
            raise ValueError(f"its key is refused (HTTP {resp.status} from "
                             f"{st.kind.models_path}): {REFUSED_HINT}")
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status} from {st.kind.models_path}")
        # the embedded backend serves every model of its models directory, loaded or not
        up.models = parse_models(st.kind, body) if st.models is None else st.models.rescan()
    return HEALTHY


def prober(app: web.Application) -> Prober[UpstreamState]:
    """The backend, every health interval; not while the embedded model loads."""
    st = app[WORKER]
    return Prober("worker-probe", functools.partial(probe, app),
                  targets=lambda: () if st.loading else (st.upstream,),
                  interval=st.cfg.health_check_interval_ms / 1000, mark=on_bus(app[keys.BUS]))


async def sample_host(st: WorkerState) -> None:
    """The GPU figures /health reports (a subprocess with nvidia-smi: in the background)."""
    if not st.loading:
        await st.host.refresh_gpu()


async def waiting_for(app: web.Application) -> str | None:
    """Ready once the backend answers its model list (the embedded model loaded)."""
    st = app[WORKER]
    if st.loading:
        return "the embedded model to load"
    if not st.upstream.healthy and not (await app[keys.PROBER].now(st.upstream)).healthy:
        # found out now, not next period
        return (f"its {st.cfg.backend} backend at {st.backend_url}: "
                f"{st.upstream.last_error or 'not answering'}")
    return None


def load_of(st: WorkerState) -> Load:
    return Load(cpu_percent=st.host.cpu_percent(), memory_percent=st.host.memory_percent(),
                gpu_percent=st.host.gpu_percent,
                gpu_memory_percent=st.host.gpu_memory_percent,
                active_requests=st.upstream.active, max_concurrency=st.max_concurrency)


def translated_paths(st: WorkerState) -> list[str]:
    """The client API paths this worker translates (eldric.wire.translated): those its
    backend does not serve natively but whose translation's target it does. A backend
    that takes any path (None) is given each as it is."""
    native = st.paths
    if native is None:
        return []
    return translatable(native) + [
        p for p in ANSWERED if not covers(native, p)]  # Ollama's /api/show, answered here


def served_paths(st: WorkerState) -> list[str] | None:
    """The API paths this worker advertises: --paths, else what its backend type serves
    (the embedded llama.cpp serves embeddings and rerank only when they are turned on)."""
    if st.cfg.paths is not None:
        return list(st.cfg.paths)
    paths = st.kind.paths
    if paths is None:
        return None
    if st.cfg.backend == "embedded":  # rerank needs llama.cpp's reranking mode, never set
        paths = tuple(p for p in paths if p != "/v1/rerank")
    if not st.serves_embeddings:
        paths = tuple(p for p in paths if p != "/v1/embeddings")
    return list(paths)


def worker_health(app: web.Application) -> WorkerHealth:
    st = app[WORKER]
    up = st.upstream
    return WorkerHealth(
        status="healthy" if up.healthy else "unhealthy",
        worker_id=st.worker_id,
        worker_type="inference",
        backend=BackendInfo(type=st.cfg.backend, url=st.backend_url, healthy=up.healthy),
        models=list(up.models),
        load=load_of(st),
        uptime_seconds=round(time.time() - app[keys.ROLE].started, 3),
        version=__version__,
        paths=st.paths if st.paths is None else [*st.paths, *st.translated],
        translated=st.translated,
        model_ops=model_ops(app),
    )
