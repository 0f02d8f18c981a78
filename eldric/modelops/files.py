"""Model operations for a backend that serves model files from a directory (llama.cpp,
vLLM, TGI, the embedded llama.cpp): a pull downloads a GGUF (or a safetensors file) from a
URL into the models directory, an install places the file there (a symlink when this host
already sees the same file: a shared filesystem), a delete removes it; the files are
served to other workers (GET /api/v1/models/files/{name})."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import BadRequest, ModelNotFound
from eldric.modelops import models_dir
from eldric.modelops.ops import Driver, Op
from eldric.modelops.source import Exclusive, already, download, shared
from eldric.wire.models import (InstallRequest, LocalModel, LocalModels, ModelOps,
                                PullRequest)

# A model name that is a file name of its own in the models directory.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,199}$")


def _checked(name: str, param: str) -> str:
    if not _NAME.match(name) or name.endswith((".part", ".tmp")):
        raise BadRequest(f"model name {name!r} cannot be a file name in the models directory "
                         "(letters, digits and . _ : + -, starting with a letter or digit)",
                         param=param, code="invalid_request")
    return name


@dataclass
class Files:
    """`describe(path)` reads a GGUF's header scalars (eldric.gguf.scalars);
    `listing()`, when given, is the backend's own list of its models (the embedded
    backend's: its start model too, and which are loaded), else the directory's."""

    kind: str
    root: Path
    session: Callable[[], aiohttp.ClientSession]
    describe: Callable[[Path], dict[str, Any]]
    listing: Callable[[], list[LocalModel]] | None = None
    ops = ModelOps(pull=["url"], install=True, delete=True, files=True)
    _busy: Exclusive = field(default_factory=Exclusive)

    def _dest(self, name: str, fmt: str, url: str) -> Path:
        if fmt == "safetensors":  # a model directory; the file keeps its own name
            leaf = Path(urlsplit(url).path).name
            return self.root / name / (leaf if leaf.endswith(".safetensors")
                                       else "model.safetensors")
        leaf = f"{name}.gguf"
        if models_dir.model_id(leaf) != name:
            # a name ending like a quantisation tag (mymodel-Q4_K_M, an Ollama tag's
            # -q4_K_M) would be listed shortened; in a folder of its own name it is not
            return self.root / name / leaf
        return self.root / leaf

    def pull_driver(self, req: PullRequest) -> Driver:
        if req.url is None:
            raise BadRequest(f"a {self.kind} worker pulls model files by URL (give `url`); "
                             "names from the Ollama library need an Ollama backend",
                             param="url", code="pull_unsupported")
        name = _checked(req.model, "model")
        fmt = "safetensors" if urlsplit(req.url).path.endswith(".safetensors") else "gguf"
        dest = self._dest(name, fmt, req.url)
        url, sha = req.url, req.sha256

        async def drive(op: Op) -> None:
            async with self._busy.hold(dest, op), self._tidy(dest):
                if not await already(dest, sha, op):
                    await download(self.session(), url, dest, op, sha256=sha, resume=True)
        return drive

    def install_driver(self, req: InstallRequest) -> Driver:
        name = _checked(req.name, "name")
        dest = self._dest(name, req.format, req.url)

        async def drive(op: Op) -> None:
            async with self._busy.hold(dest, op), self._tidy(dest):
                await self._install(req, dest, op)
        return drive

    @contextlib.asynccontextmanager
    async def _tidy(self, dest: Path) -> AsyncIterator[None]:
        """The model's own folder removed again when the operation ends with nothing in
        it (failed, cancelled, no part file kept to resume)."""
        try:
            yield
        finally:
            if dest.parent != self.root:
                with contextlib.suppress(OSError):  # not empty, or never made
                    await asyncio.shield(asyncio.to_thread(dest.parent.rmdir))

    async def _install(self, req: InstallRequest, dest: Path, op: Op) -> None:
        here = await shared(req)
        if here is not None:
            op.update(state="verifying", message=f"same file at {here}: linked, not copied",
                      total_bytes=req.size, completed_bytes=req.size or 0)
            await asyncio.to_thread(_link, here, dest)
        elif not await already(dest, req.sha256, op):
            await download(self.session(), req.url, dest, op, sha256=req.sha256,
                           headers=req.headers, size=req.size)

    async def delete(self, name: str) -> None:
        m = await asyncio.to_thread(models_dir.resolve, self.root, name)
        if m is None or m.path is None:
            raise ModelNotFound(f"model {name!r} is not in this worker's models directory",
                                param="name")
        await asyncio.to_thread(_remove, Path(m.path))
        if Path(m.path).parent != self.root and m.format == "gguf":
            with contextlib.suppress(OSError):  # its own folder, when now empty
                await asyncio.to_thread(Path(m.path).parent.rmdir)

    def _listed(self, name: str) -> LocalModel | None:
        """A model to show or serve: in the backend's own list (the embedded backend's
        start model may be anywhere on disk), else in the models directory."""
        if self.listing is not None:
            found = next((m for m in self.listing() if m.name == name and m.path), None)
            if found is not None:
                return found
        return models_dir.resolve(self.root, name)

    async def show(self, name: str) -> web.Response:
        m = await asyncio.to_thread(self._listed, name)
        if m is None or m.path is None:
            raise ModelNotFound(f"model {name!r} is not in this worker's models directory",
                                param="model")
        meta: dict[str, Any] = {}
        if m.format == "gguf":
            meta = await asyncio.to_thread(self.describe, Path(m.path))
        template = meta.pop("tokenizer.chat_template", None)
        return json_response({"model": m.name, "format": m.format, "size": m.size,
                              "path": m.path, "metadata": meta, "template": template})

    async def local(self) -> LocalModels:
        listed = self.listing or (lambda: models_dir.installed(self.root))
        return LocalModels(backend=self.kind, models=await asyncio.to_thread(listed))

    def file(self, name: str) -> Path | None:
        m = self._listed(name)
        if m is None or m.path is None or m.format != "gguf":
            return None  # a safetensors directory is several files: not one download
        return Path(m.path)


def _link(source: Path, dest: Path) -> None:
    """dest -> source, replacing what was there in one step (a reader sees the old file
    or the new link, never neither)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(source, tmp)
    os.replace(tmp, dest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
