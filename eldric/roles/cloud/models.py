"""The cloud worker's model API (eldric.modelops.routes) on its Ollama backend: the one
enabled with the best priority (a cloud worker with several Ollamas is several places to
pull to; the controller targets workers, so it pulls to the first). Without an enabled
Ollama the cloud worker does nothing with models (pull_unsupported). After an operation,
or a delete, its Ollama backends are probed at once and it heartbeats."""

from __future__ import annotations

import os
from pathlib import Path

import structlog
from aiohttp import web

from eldric import keys
from eldric.modelops.ollama import Ollama
from eldric.modelops.ops import Op, Ops
from eldric.modelops.routes import ModelApi
from eldric.modelops.routes import add_routes as add_model_routes
from eldric.roles.cloud.state import CLOUD
from eldric.tasks import spawn

log = structlog.get_logger("eldric.cloud")


def add_routes(app: web.Application) -> None:
    cs = app[CLOUD]
    made: dict[str, Ollama] = {}  # one adapter per backend (it holds its file locks)
    work_dir = Path(os.path.join(app[keys.PROCESS].data_dir, "models", ".incoming"))

    def ollamas() -> list:  # type: ignore[type-arg]
        return [b for b in cs.ordered() if b.enabled and b.type == "ollama"]

    def backend() -> Ollama | None:
        first = next(iter(ollamas()), None)
        if first is None:
            return None
        o = made.get(first.name)
        if o is None or o.base != first.url:
            o = made[first.name] = Ollama(
                base=first.url, session=lambda: app[keys.SESSION],
                headers=first.auth_headers(), connect=cs.timeouts.connect,
                idle=cs.timeouts.idle, work_dir=work_dir)
        return o

    async def refresh() -> None:
        for b in ollamas():
            await app[keys.PROBER].now(b)
        if cs.membership is not None:
            spawn(cs.membership.beat_now(), name="cloud-heartbeat-now")

    async def after(op: Op) -> None:
        log.info("model_op_refresh", op_id=op.id, model=op.progress.model)
        await refresh()

    add_model_routes(app, ModelApi(backend, Ops(after=after), cs.cfg.api_key,
                                   changed=refresh))
