"""The worker's Ollama model endpoints: GET /api/tags, /api/version, /api/ps and
POST /api/show. Relayed as they are to an Ollama backend; answered here for any other
(eldric.wire.ollama's bodies), from the backend's model list and, for the embedded
llama.cpp, the GGUF file's own metadata. /api/chat, /api/generate and /api/embed are
eldric.wire.translated paths (handlers.add_routes)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiohttp import web

from eldric import keys
from eldric.errors import ModelNotFound
from eldric.http import read_body
from eldric.ollama_api import add_listing, answer
from eldric import gguf
from eldric.roles.worker.embedded import default_model
from eldric.roles.worker.handlers import _backend_models, native
from eldric.roles.worker.state import WORKER, WorkerState
from eldric.wire import ollama
from eldric.wire.cluster import covers

# answered by the worker itself where the backend is not an Ollama (routers route
# /api/show by model, and answer the others from the cluster's list themselves)
ANSWERED = (ollama.SHOW,)


async def show(request: web.Request) -> web.Response:
    model = ollama.show_model(await read_body(request))
    request[keys.HOP].model = model
    if model not in await _backend_models(request):
        raise ModelNotFound(f"model '{model}' not found", param="model")
    return answer(ollama.show(**await _described(request.app, model)))


# What /api/show says of a model of this worker: worked out once a model file (the
# embedded model's path is looked up among the installed packages, its GGUF header read),
# on a thread, so no request waits on the disk in the event loop.
_DESCRIPTION: web.AppKey[dict[str, dict[str, Any]]] = web.AppKey("eldric_worker_ollama_show",
                                                                 dict)


async def _described(app: web.Application, model: str) -> dict[str, Any]:
    st = app[WORKER]
    # the embedded backend's models each have their file; "" for the one model of others
    path = st.models.catalog.get(model, "") if st.models is not None else ""
    known = app[_DESCRIPTION]  # made empty with the routes, filled as models are asked
    if path not in known:
        known[path] = await asyncio.to_thread(_description, st, path)
    return known[path]


def _description(st: WorkerState, path: str) -> dict[str, Any]:
    capabilities = ["completion"]
    if st.cfg.backend == "mock" or (st.cfg.backend == "embedded" and st.cfg.embeddings):
        capabilities.append("embedding")
    if st.cfg.backend != "embedded":
        return {"capabilities": capabilities}
    path = path or st.cfg.model or default_model()  # type: ignore[assignment]
    info = _gguf_info(path) if path else {}
    family = str(info.get("general.architecture") or "")
    return {"model_info": info, "capabilities": capabilities,
            "model_details": ollama.details(family=family, format="gguf",
                                            parameter_size=str(info.get("general.size_label")
                                                               or ""))}


@functools.cache
def _gguf_info(path: str) -> dict[str, Any]:
    """The GGUF header's scalars, as Ollama's model_info has them (general.architecture,
    <arch>.context_length…); the chat template is a template, not model info."""
    return {k: v for k, v in gguf.scalars(path).items() if k != "tokenizer.chat_template"}


def add_routes(app: web.Application) -> None:
    st = app[WORKER]
    if st.paths is None or covers(st.paths, "/api"):  # an Ollama: all of it relayed
        for path in ollama.LISTING:
            app.router.add_get(path, native)
        app.router.add_post(ollama.SHOW, native)
        return
    add_listing(app, _backend_models)
    app[_DESCRIPTION] = {}
    app.router.add_post(ollama.SHOW, show)
