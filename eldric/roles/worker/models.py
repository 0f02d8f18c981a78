"""The worker's model API (eldric.modelops.routes) over its backend: Ollama through its
own API, llama.cpp, vLLM, TGI and the embedded llama.cpp through the models directory;
other backends do nothing with models (pull_unsupported). After an operation completes,
or a delete, the worker asks its backend for the model list at once and heartbeats, so
the controller and the routers see the change without waiting a period."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from aiohttp import web

from eldric import gguf, keys
from eldric.modelops.files import Files
from eldric.modelops.ollama import Ollama
from eldric.modelops.ops import Op, Ops
from eldric.modelops.routes import MODEL_API, Backend, ModelApi
from eldric.modelops.routes import add_routes as add_model_routes
from eldric.roles.worker.state import WORKER, WorkerState
from eldric.tasks import spawn
from eldric.wire.models import ModelOps

log = structlog.get_logger("eldric.worker")

FILE_BACKENDS = ("llamacpp", "vllm", "tgi", "embedded")


def models_dir(app: web.Application) -> Path:
    cfg = app[WORKER].cfg
    return Path(cfg.models_dir or os.path.join(app[keys.PROCESS].data_dir, "models"))


def backend_of(app: web.Application, st: WorkerState) -> Backend | None:
    def session():  # type: ignore[no-untyped-def]
        return app[keys.SESSION]

    root = models_dir(app)
    if st.cfg.backend == "ollama":
        return Ollama(base=st.backend_url, session=session,
                      headers=st.target.headers if st.target else None,
                      connect=st.timeouts.connect, idle=st.timeouts.idle,
                      work_dir=root / ".incoming")
    if st.cfg.backend in FILE_BACKENDS:
        return Files(kind=st.cfg.backend, root=root, session=session,
                     describe=lambda p: gguf.scalars(str(p)))
    return None


def model_ops(app: web.Application) -> ModelOps | None:
    """What /health and the registration say this worker can do with models."""
    api = app.get(MODEL_API)
    return api.backend.ops if api is not None and api.backend is not None else ModelOps()


async def _refresh(app: web.Application) -> None:
    """The backend's model list asked now; the controller told at once, in the
    background (a slow controller must not hold the op's last line)."""
    st = app[WORKER]
    if not st.loading:
        await app[keys.PROBER].now(st.upstream)
    if st.membership is not None:
        spawn(st.membership.beat_now(), name="worker-heartbeat-now")


async def _ops_lifecycle(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[MODEL_API].ops.close()  # a stopping worker leaves no download running


def add_routes(app: web.Application) -> None:
    st = app[WORKER]

    async def after(op: Op) -> None:
        log.info("model_op_refresh", op_id=op.id, model=op.progress.model)
        await _refresh(app)

    api = ModelApi(backend_of(app, st), Ops(after=after), st.cfg.api_key,
                   changed=lambda: _refresh(app))
    add_model_routes(app, api)
    app.cleanup_ctx.append(_ops_lifecycle)
