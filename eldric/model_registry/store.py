"""The registry's files on disk: one directory per model, committed by its meta.json.

    <dir>/<id>/<name>.gguf      the model file
    <dir>/<id>/meta.json        its RegistryModel, written last (a model without it is
                                an interrupted commit: removed at start-up)
    <dir>/.incoming/*.part      uploads in progress (removed at start-up: a process that
                                died mid-upload leaves nothing that is listed)

The in-memory index is the source of truth while the role runs; every change to the disk
is made in a worker thread (a rename, a header read, an rmtree), never in the event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import time
from pathlib import Path

import msgspec
import structlog

from eldric import gguf
from eldric.config import RegistryConfig
from eldric.wire.model_registry import Format, RegistryModel

log = structlog.get_logger("eldric.model_registry")

META = "meta.json"
INCOMING = ".incoming"
EXTENSIONS: dict[str, str] = {"gguf": ".gguf", "safetensors": ".safetensors"}
# A registry name is what a worker installs the model as (an Ollama tag, a file name):
# letters, digits and . _ : - (no slash: it is also a path segment of the API).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


class ModelRegistry:
    def __init__(self, directory: str, cfg: RegistryConfig) -> None:
        self.dir = Path(directory)
        self.cfg = cfg
        self.models: dict[str, RegistryModel] = {}  # id -> model
        self.pending: set[str] = set()  # names of uploads in progress

    # ------------------------------------------------------------------ looking up

    def list(self) -> list[RegistryModel]:
        """Newest first."""
        return sorted(self.models.values(), key=lambda m: m.created_at, reverse=True)

    def get(self, ref: str) -> RegistryModel | None:
        """A model by its id or its name."""
        found = self.models.get(ref)
        if found is not None:
            return found
        return next((m for m in self.models.values() if m.name == ref), None)

    def registry_path(self, ref: str) -> Path | None:
        """The model file of a model (by id or name): for a distribution that offers a
        worker the file by path (a shared filesystem; the model's size and sha256 say
        whether the worker's file at that path is the same one)."""
        model = self.get(ref)
        return None if model is None else Path(model.path)

    def taken(self, name: str) -> bool:
        return name in self.pending or self.get(name) is not None

    # ------------------------------------------------------------------ changing

    def load(self) -> None:
        """Read the index from disk (at start-up), dropping what an interrupted upload or
        commit left behind."""
        self.dir.mkdir(parents=True, exist_ok=True)
        incoming = self.dir / INCOMING
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir()
        for entry in self.dir.iterdir():
            if not entry.is_dir() or entry.name == INCOMING:
                continue
            try:
                model = msgspec.json.decode((entry / META).read_bytes(), type=RegistryModel)
            except FileNotFoundError:
                log.warning("registry_incomplete_model_removed", path=str(entry))
                shutil.rmtree(entry, ignore_errors=True)
                continue
            except (OSError, msgspec.DecodeError) as exc:
                log.warning("registry_model_unreadable", path=str(entry), error=str(exc))
                continue
            # the directory may have moved since (a restored backup): its file is here now
            model.path = str(entry / model.filename)
            self.models[model.id] = model
        log.info("registry_loaded", dir=str(self.dir), models=len(self.models))

    def part_path(self) -> Path:
        return self.dir / INCOMING / f"{secrets.token_hex(8)}.part"

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.dir).free

    async def commit(self, part: Path, *, name: str, format: Format, size: int, sha256: str,
                     source: str, description: str,
                     header: gguf.Header | None = None) -> RegistryModel:
        """Move a finished upload into place and index it (with what its GGUF `header`
        says). The caller holds the name (in `pending`, so no other upload takes it
        meanwhile)."""
        model_id = secrets.token_hex(6)
        while model_id in self.models:
            model_id = secrets.token_hex(6)
        filename = name.replace(":", "-") + EXTENSIONS[format]
        home = self.dir / model_id
        model = RegistryModel(id=model_id, name=name, format=format, size=size, sha256=sha256,
                              created_at=time.time(), filename=filename,
                              path=str(home / filename), source=source,
                              description=description)
        if header is not None:
            model.architecture = header.architecture
            model.parameter_count = header.parameter_count
            model.file_type = header.file_type
            model.quantization = header.quantization
            ctx = header.scalars.get(f"{header.architecture}.context_length")
            model.context_length = ctx if isinstance(ctx, int) else None
        await asyncio.to_thread(_place, part, home, model)
        self.models[model_id] = model
        log.info("registry_model_added", id=model_id, name=name, size=size, sha256=sha256)
        return model

    async def delete(self, ref: str) -> RegistryModel | None:
        model = self.get(ref)
        if model is None:
            return None
        del self.models[model.id]  # unlisted at once; a download in progress keeps its fd
        await asyncio.to_thread(shutil.rmtree, self.dir / model.id, True)
        log.info("registry_model_deleted", id=model.id, name=model.name)
        return model


def _place(part: Path, home: Path, model: RegistryModel) -> None:
    """Rename the part into its directory, write meta.json last."""
    home.mkdir()
    try:
        target = home / model.filename
        os.replace(part, target)
        tmp = home / (META + ".tmp")
        tmp.write_bytes(msgspec.json.encode(model))
        os.replace(tmp, home / META)
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
