"""The worker's model API (eldric.modelops.routes) over its backend: Ollama through its
own API, llama.cpp, vLLM, TGI and the embedded llama.cpp through the models directory;
other backends do nothing with models (pull_unsupported). After an operation completes,
or a delete, the worker asks its backend for the model list at once and heartbeats, so
the controller and the routers see the change without waiting a period."""

from __future__ import annotations

import structlog
from aiohttp import web

from eldric import gguf, keys
from eldric.modelops.files import Files
from eldric.modelops.ollama import Ollama
from eldric.modelops.ops import Op, Ops
from eldric.modelops.routes import Backend, ModelApi
from eldric.modelops.routes import add_routes as add_model_routes
from eldric.roles.worker.state import WORKER, WorkerState
from eldric.tasks import spawn

log = structlog.get_logger("eldric.worker")

FILE_BACKENDS = ("llamacpp", "vllm", "tgi", "embedded")


def backend_of(app: web.Application, st: WorkerState) -> Backend | None:
    def session():  # type: ignore[no-untyped-def]
        return app[keys.SESSION]

    root = st.models_dir
    if st.cfg.backend == "ollama":
        return Ollama(base=st.backend_url, session=session,
                      headers=st.target.headers if st.target else None,
                      connect=st.timeouts.connect, idle=st.timeouts.idle,
                      work_dir=root / ".incoming")
    if st.cfg.backend in FILE_BACKENDS:
        # the embedded backend's own list: its start model too, and which are loaded
        listing = (lambda: st.models.local() if st.models is not None else []) \
            if st.cfg.backend == "embedded" else None
        return Files(kind=st.cfg.backend, root=root, session=session,
                     describe=lambda p: gguf.scalars(str(p)), listing=listing)
    return None


async def _refresh(app: web.Application) -> None:
    """The backend's model list asked now; the controller told at once, in the
    background (a slow controller must not hold the op's last line)."""
    st = app[WORKER]
    st.refresh()  # the embedded backend's models directory read again
    if not st.loading:
        await app[keys.PROBER].now(st.upstream)
    if st.membership is not None:
        spawn(st.membership.beat_now(), name="worker-heartbeat-now")


def add_routes(app: web.Application) -> None:
    st = app[WORKER]

    async def after(op: Op) -> None:
        log.info("model_op_refresh", op_id=op.id, model=op.progress.model)
        await _refresh(app)

    backend = backend_of(app, st)
    api = ModelApi(lambda: backend, Ops(after=after), st.cfg.api_key,
                   changed=lambda: _refresh(app))
    add_model_routes(app, api)
