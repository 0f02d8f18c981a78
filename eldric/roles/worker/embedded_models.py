"""The embedded backend's models: the GGUF it started with and every GGUF in --models-dir,
each loaded on demand into a llama.cpp server of its own.

At most --max-loaded-models are in memory; to load another, the least recently used is
unloaded once it is idle (a request in flight finishes first). One model loads at a time.
A request for a model that is not loaded waits for it up to --model-load-wait, then gets
503 model_loading with Retry-After and where the load stands. The list of models is read
from the directory at start, on each health probe, when a request asks for a name it does
not know, and when the worker's model operations say a file was installed (`refresh`),
so a model copied in is servable without a restart.

Only the embedded backend has one of these (WorkerState.models); every other backend's
requests go to its one target as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import structlog

from eldric.errors import ErrorBody, ModelNotFound, UpstreamUnavailable, error_type_for
from eldric.modelops.models_dir import installed
from eldric.roles.worker.embedded import Embedded, Launch, native_tools, pooling_for
from eldric.stream import Target
from eldric.wire.models import LocalModel
from eldric.wire.openai import Model

log = structlog.get_logger("eldric.worker")

_KEEP = 2.0  # s a model just loaded is kept for the requests that waited for it


class ServedModel(Model):
    """/v1/models of the embedded backend: OpenAI's model object, and whether it is in
    memory now (a request for one that is not waits for its load)."""

    loaded: bool = False


class ModelLoading(UpstreamUnavailable):
    """503 model_loading, with the load's progress beside OpenAI's error fields (clients
    that know only those ignore it)."""

    code = "model_loading"

    def __init__(self, message: str, progress: dict[str, Any], retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.progress = progress

    def body(self) -> bytes:
        error = msgspec.to_builtins(ErrorBody(message=self.message, type=error_type_for(503),
                                              code=self.code))
        return msgspec.json.encode({"error": {**error, "progress": self.progress}})


@dataclass
class Engine:
    """One loaded model: its llama.cpp server and the requests in flight to it."""

    name: str
    path: str
    server: Embedded
    target: Target
    active: int = 0
    closing: bool = False  # being unloaded: new requests load it again
    # Just loaded: not unloaded before the requests that waited for it ran (they wake
    # after the next load has taken the lock), unless none comes by then.
    kept_until: float = 0.0


@dataclass
class Load:
    name: str
    path: str
    size: int
    task: asyncio.Task[Engine] | None = None
    state: str = "queued"  # queued (behind another load), waiting (for a model to go idle), loading
    started: float = dataclasses.field(default_factory=time.monotonic)
    loading_since: float | None = None


def _file_key(path: str) -> tuple[int, float] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime


def _check_gguf(path: str) -> None:
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file (it does not begin with GGUF)")


class EmbeddedModels:
    def __init__(self, launch: Launch, models_dir: Path, *, max_loaded: int, wait: float,
                 pooling: str, on_current: Callable[[Target], None],
                 target_of: Callable[[str], Target]):
        self.launch = launch  # the start model; others load with its settings
        self.models_dir = models_dir
        self.max_loaded = max_loaded
        self.wait = wait
        self.pooling = pooling
        self.on_current = on_current  # the target of paths that name no model
        self.target_of = target_of
        self.catalog: dict[str, str] = {}  # name -> GGUF path
        self.engines: OrderedDict[str, Engine] = OrderedDict()  # least recently used first
        self.loads: dict[str, Load] = {}
        self.failed: dict[str, tuple[tuple[int, float] | None, str]] = {}
        self.current: Engine | None = None
        self._one_load = asyncio.Lock()
        self._idle = asyncio.Event()
        self._bytes_per_second: float | None = None  # of the last load: for estimates
        self.rescan()

    # ---------------------------------------------------------------- what is installed

    def rescan(self) -> list[str]:
        """Read the models directory again: the names served. A loaded model whose file
        is gone is unloaded once idle."""
        # (the same path; a link to the same file elsewhere is another name for it)
        start = os.path.abspath(self.launch.model)
        found = {m.name: m.path for m in installed(self.models_dir)
                 if m.format == "gguf" and m.path and os.path.abspath(m.path) != start}
        # the start model's id wins, and its file is served by that id only (--model-id)
        found[self.launch.model_id] = self.launch.model
        self.catalog = found  # type: ignore[assignment]
        for eng in list(self.engines.values()):
            if eng.name not in found and eng.active == 0:
                asyncio.get_running_loop().create_task(self._unload(eng))
        return self.names()

    def names(self) -> list[str]:
        return sorted(self.catalog)

    def listed(self, owner: str) -> list[ServedModel]:
        return [ServedModel(id=n, owned_by=owner, loaded=self._loaded(n)) for n in self.names()]

    def local(self) -> list[LocalModel]:
        """The worker's LocalModels (GET /api/v1/models/local), loaded or not."""
        by_path = {m.path: m for m in installed(self.models_dir)}
        out = []
        for name, path in sorted(self.catalog.items()):
            m = by_path.get(path) or LocalModel(name=name, format="gguf", path=path,
                                                size=(_file_key(path) or (None,))[0])
            out.append(msgspec.structs.replace(m, name=name, loaded=self._loaded(name)))
        return out

    def native_tools(self, name: str | None) -> bool:
        """Whether the model `name` (None: the last one asked for) takes tools in its own
        chat template (embedded.native_tools); an unknown name: no."""
        path = self.catalog.get(name) if name else (
            self.current.path if self.current is not None else self.launch.model)
        return path is not None and native_tools(path)

    def _loaded(self, name: str) -> bool:
        eng = self.engines.get(name)
        return eng is not None and not eng.closing

    # ---------------------------------------------------------------- serving

    @contextlib.asynccontextmanager
    async def using(self, name: str | None) -> AsyncIterator[Target]:
        """The target for a request naming `name` (None: the model of the last request),
        loaded first if need be; held in use (not unloaded) until the block ends."""
        eng = self._ready(name) or await self._wait_for(name or self.launch.model_id)
        eng.active += 1
        eng.kept_until = 0.0
        try:
            yield eng.target
        finally:
            eng.active -= 1
            if eng.active == 0:
                self._idle.set()

    def _ready(self, name: str | None) -> Engine | None:
        eng = self.current if name is None else self.engines.get(name)
        if eng is None or eng.closing:
            return None
        self.engines.move_to_end(eng.name)
        if eng is not self.current:
            self.current = eng
            self.on_current(eng.target)
        return eng

    async def _wait_for(self, name: str) -> Engine:
        while True:
            if name not in self.catalog and name not in self.rescan():
                raise ModelNotFound(f"the model {name!r} is not installed on this worker "
                                    f"(installed: {', '.join(self.names())})", param="model")
            path = self.catalog[name]
            if (failed := self.failed.get(name)) and failed[0] == _file_key(path):
                raise UpstreamUnavailable(failed[1], code="model_load_failed")
            load = self.loads.get(name) or self._start(name, path)
            assert load.task is not None
            try:
                await asyncio.wait_for(asyncio.shield(load.task), self.wait)
            except TimeoutError:
                raise self._still_loading(load) from None
            except Exception:  # noqa: BLE001 - said once, as model_load_failed
                raise UpstreamUnavailable(self.failed[name][1],
                                          code="model_load_failed") from None
            if (eng := self._ready(name)) is not None:
                return eng
            # unloaded again before this request ran (a file removed): load it anew

    def _start(self, name: str, path: str) -> Load:
        size = (_file_key(path) or (0,))[0]
        load = self.loads[name] = Load(name=name, path=path, size=int(size))
        load.task = asyncio.get_running_loop().create_task(self._load(load),
                                                           name=f"embedded-load-{name}")
        # its failure is answered to whoever waits, or to the next request: not a warning
        # about an exception nobody retrieved
        load.task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return load

    def _still_loading(self, load: Load) -> ModelLoading:
        now = time.monotonic()
        progress: dict[str, Any] = {"model": load.name, "state": load.state,
                                    "size_bytes": load.size,
                                    "waited_ms": round((now - load.started) * 1000)}
        left = 2.0
        if load.loading_since is not None and self._bytes_per_second:
            # from the last load's speed: llama.cpp reports no progress of its own
            took = now - load.loading_since
            expected = load.size / self._bytes_per_second
            progress["estimated_percent"] = min(99, round(100 * took / max(expected, 1e-3)))
            left = max(1.0, expected - took)
        what = {"queued": "waits for another model's load",
                "waiting": "waits for a loaded model to finish its requests",
                "loading": "is loading"}[load.state]
        return ModelLoading(f"backend embedded: the model {load.name!r} {what}; retry "
                            "shortly", progress, retry_after=min(60, math.ceil(left)))

    # ---------------------------------------------------------------- loading, unloading

    async def start(self) -> Engine:
        """Load the start model (the worker's start-up; errors raised to the caller)."""
        load = self._start(self.launch.model_id, self.launch.model)
        assert load.task is not None
        engine = await asyncio.shield(load.task)
        engine.kept_until = 0.0  # no request waited for it
        self._ready(engine.name)
        return engine

    async def _load(self, load: Load) -> Engine:
        try:
            async with self._one_load:
                if len(self.engines) >= self.max_loaded:
                    _check_gguf(load.path)  # before another model is unloaded for it
                    await self._make_room(load)
                load.state, load.loading_since = "loading", time.monotonic()
                launch = self._launch_of(load)
                server = Embedded()
                try:
                    url = await server.start(launch)
                except BaseException:
                    await server.stop()
                    raise
                took = time.monotonic() - load.loading_since
                if load.size and took > 0:
                    self._bytes_per_second = load.size / took
                eng = Engine(name=load.name, path=load.path, server=server,
                             target=self.target_of(url), kept_until=time.monotonic() + _KEEP)
                self.engines[load.name] = eng
                self.failed.pop(load.name, None)
                log.info("model_ready", model_id=load.name, url=url, load_seconds=round(took, 3))
                if self.current is None:
                    self._ready(load.name)
                return eng
        except Exception as exc:
            message = f"backend embedded could not load {load.path}: {exc}"
            self.failed[load.name] = (_file_key(load.path), message)
            # RuntimeError is xllamacpp's only word (llama.cpp logged why); anything else
            # is an xllamacpp this worker cannot drive (pyproject says which it needs).
            log.error("model_load_failed", model=load.path, model_id=load.name,
                      error=f"{type(exc).__name__}: {exc}",
                      check="is it a GGUF file this llama.cpp can load? Its own error lines "
                            "above say why it refused" if isinstance(exc, (RuntimeError, ValueError)) else
                            "is xllamacpp as new as eldric[local] asks? "
                            "pip install -U 'eldric[local]'")
            raise
        finally:
            self.loads.pop(load.name, None)

    def _launch_of(self, load: Load) -> Launch:
        if load.path == self.launch.model:
            return self.launch
        pooling = pooling_for(load.path, self.pooling) if self.launch.embeddings else None
        return dataclasses.replace(self.launch, model=load.path, model_id=load.name,
                                   pooling=pooling)

    async def _make_room(self, load: Load) -> None:
        """Unload the least recently used idle models until one more fits, waiting for
        one to go idle when every loaded model is serving (or was loaded just now)."""
        while len(self.engines) >= self.max_loaded:
            self._idle.clear()
            now = time.monotonic()
            idle = [e for e in self.engines.values() if e.active == 0]
            victim = next((e for e in idle if e.kept_until <= now), None)
            if victim is not None:
                await self._unload(victim)
                continue
            load.state = "waiting"
            kept = [e.kept_until - now for e in idle]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), min(kept) if kept else None)

    async def _unload(self, eng: Engine) -> None:
        if eng.closing:
            return
        eng.closing = True
        if self.engines.get(eng.name) is eng:
            del self.engines[eng.name]
        if self.current is eng:
            self.current = None
            if self.engines:  # paths that name no model go to the most recent one
                self._ready(next(reversed(self.engines)))
        log.info("model_unloaded", model_id=eng.name)
        await eng.server.stop()

    async def stop(self) -> None:
        for load in list(self.loads.values()):
            if load.task is not None:
                load.task.cancel()
                with contextlib.suppress(BaseException):
                    await load.task
        for eng in list(self.engines.values()):
            await self._unload(eng)
