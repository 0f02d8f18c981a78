"""POST /api/v1/model-registry/upload: a model file streamed to disk, never held in memory.

The body is a multipart/form-data form (a file part plus text fields) or the raw file
(fields in the query). It is the one route of a role that reads its body itself, chunk
by chunk, instead of through eldric.http.read_body: a model is gigabytes and takes
minutes, so neither the role's --max-body-size (aiohttp's client_max_size, which only
request.read()/post() apply) nor its --body-timeout (read_body's) may hold it. Its own
limits instead: --registry-max-upload-size, free disk above --registry-min-free-size,
and --registry-idle-timeout between two chunks (a stalled client is cut off; a slow one
that keeps sending is not). The fast lane never takes this route (it takes only the
inference POSTs), so aiohttp reads it.

Bytes are hashed (sha256) and written by a worker thread about 1 MiB at a time while the
next chunk arrives. A refused, failed or abandoned upload (the client leaving cancels the
handler) removes its part file: nothing of it is listed or left on disk.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import get_args

from aiohttp import BodyPartReader, web

from eldric import gguf
from eldric.errors import BadRequest, EldricError
from eldric.model_registry.store import NAME, ModelRegistry
from eldric.wire.model_registry import Format, RegistryModel

_FLUSH = 1 << 20  # bytes handed to the writer thread at a time
_DISK_CHECK = 256 << 20  # free disk is looked at again after this many bytes
_FIELD_MAX = 64 * 1024  # a form field (a description) is text, not a file
_MULTIPART_SLACK = 1 << 20  # a form's boundaries and fields around the file
FIELDS = ("name", "format", "description", "source", "sha256", "filename")
_FORMATS = get_args(Format)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class UploadTooLarge(EldricError):
    status = 413
    code = "upload_too_large"


class InsufficientStorage(EldricError):
    status = 507
    code = "insufficient_storage"


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"the model file is larger than this registry takes ({limit} bytes, "
                          "--registry-max-upload-size)")


def _no_room(free: int, need: int, keep: int) -> InsufficientStorage:
    return InsufficientStorage(f"not enough free disk for the upload: {free} bytes free, "
                               f"{need} needed plus {keep} kept free (--registry-min-free-size)")


def sniff(head: bytes) -> Format | None:
    """The format a file's first bytes say: GGUF's magic, or safetensors' little-endian
    header length followed by the JSON header's opening brace."""
    if head[:4] == b"GGUF":
        return "gguf"
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 1 << 30:
        return "safetensors"
    return None


class PartWriter:
    """One upload's part file in the registry's incoming directory."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.path: Path = registry.part_path()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = b""
        self._buf = bytearray()
        self._pending: asyncio.Future[None] | None = None
        self._next_check = _DISK_CHECK

    async def feed(self, data: bytes) -> None:
        cfg = self.registry.cfg
        self.size += len(data)
        if self.size > cfg.max_upload_bytes:
            raise _too_large(cfg.max_upload_bytes)
        if len(self.head) < 16:
            self.head += data[:16 - len(self.head)]
            if len(self.head) >= 9 and sniff(self.head) is None:
                raise _not_a_model()
        self._buf += data
        if len(self._buf) >= _FLUSH:
            await self._flush()
        if self.size >= self._next_check:
            self._next_check += _DISK_CHECK
            free = self.registry.free_bytes()
            if free < cfg.min_free_bytes:
                raise _no_room(free, 0, cfg.min_free_bytes)

    async def _flush(self) -> None:
        await self._wait()
        chunk, self._buf = self._buf, bytearray()
        if chunk:
            loop = asyncio.get_running_loop()
            self._pending = loop.run_in_executor(None, self._write, chunk)

    async def _wait(self) -> None:
        pending = self._pending
        if pending is None:
            return
        try:
            # shielded, and kept in _pending if this is cancelled: the thread goes on
            # writing, and discard() waits for it before closing the descriptor
            await asyncio.shield(pending)
        except OSError as exc:
            self._pending = None
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _no_room(self.registry.free_bytes(), 0,
                               self.registry.cfg.min_free_bytes) from None
            raise EldricError(f"the registry could not write the upload: {exc.strerror}",
                              code="registry_write_failed") from None
        self._pending = None

    def _write(self, chunk: bytearray) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view):]
        self.hash.update(chunk)

    async def finish(self) -> None:
        await self._flush()
        await self._wait()
        os.close(self.fd)
        self.fd = -1

    async def discard(self) -> None:
        """Remove the part file (after the writer thread is done with it)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # seen: the upload is being thrown away anyway
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.path.unlink(missing_ok=True)


def _not_a_model() -> EldricError:
    return EldricError("the file is neither GGUF nor safetensors (by its first bytes)",
                       status=400, code="invalid_model_file")


async def _within(read: Callable[[], Awaitable], idle_ms: int):  # type: ignore[no-untyped-def]
    """One read of the body, within the idle timeout."""
    try:
        async with asyncio.timeout(idle_ms / 1000):
            return await read()
    except TimeoutError:
        raise EldricError(f"the upload sent nothing for {idle_ms} ms "
                          "(--registry-idle-timeout)", status=408, code="body_timeout") from None


def precheck(request: web.Request, registry: ModelRegistry) -> None:
    """What the request's head already tells: a bad or taken name, a bad format or
    sha256, too large, no room."""
    cfg = registry.cfg
    name = request.query.get("name")
    if name is not None:
        _check_name(name)
        if registry.taken(name):
            raise _exists(name)
    fmt = request.query.get("format")
    if fmt and fmt not in _FORMATS:
        raise BadRequest(f"format must be one of {', '.join(_FORMATS)}", param="format")
    want = request.query.get("sha256", "").strip()
    if want and not _SHA256.fullmatch(want):
        raise BadRequest("sha256 must be the file's 64 hex digits", param="sha256")
    declared = request.content_length
    if declared is None:  # chunked: no size to check yet; the disk is checked as it comes
        free = registry.free_bytes()
        if free < cfg.min_free_bytes:
            raise _no_room(free, 0, cfg.min_free_bytes)
        return
    slack = _MULTIPART_SLACK if request.content_type == "multipart/form-data" else 0
    if declared > cfg.max_upload_bytes + slack:
        raise _too_large(cfg.max_upload_bytes)
    free = registry.free_bytes()
    if free - declared < cfg.min_free_bytes:
        raise _no_room(free, declared, cfg.min_free_bytes)


class _Hold:
    """The name an upload holds (registry.pending) from the moment it is known, so a
    second upload of that name is refused before it sends its file, not after."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.name: str | None = None

    def take(self, name: str) -> None:
        if name == self.name:
            return
        _check_name(name)
        self.release()
        if self.registry.taken(name):
            raise _exists(name)
        self.registry.pending.add(name)
        self.name = name

    def release(self) -> None:
        if self.name is not None:
            self.registry.pending.discard(self.name)
            self.name = None


def _exists(name: str) -> EldricError:
    return EldricError(f"the registry has a model named {name!r} already; delete it first "
                       "or choose another name", status=409, code="registry_model_exists",
                       param="name")


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise BadRequest("name must be 1-200 letters, digits and . _ : - (starting with a "
                         "letter or digit)", param="name")


async def receive(request: web.Request, registry: ModelRegistry) -> RegistryModel:
    """Stream the upload to a part file, check it, commit it; or leave nothing behind.
    (The caller has run precheck().)"""
    fields = {k: v for k, v in request.query.items() if k in FIELDS}
    idle = registry.cfg.idle_timeout_ms
    writer: PartWriter | None = None
    hold = _Hold(registry)
    try:
        if "name" in fields:
            hold.take(fields["name"])
        if request.content_type == "multipart/form-data":
            writer = await _read_form(request, registry, fields, idle, hold)
        else:
            writer = PartWriter(registry)
            while chunk := await _within(request.content.readany, idle):
                await writer.feed(chunk)
        await writer.finish()
        name, fmt = _check(writer, fields)
        hold.take(name)
        header = None
        if fmt == "gguf":
            header = await asyncio.to_thread(gguf.header, str(writer.path))
            if header.tensor_count is None:
                raise EldricError("the file starts as GGUF but its header cannot be read "
                                  "(cut short, or an unknown version)", status=400,
                                  code="invalid_model_file")
        model = await registry.commit(writer.path, name=name, format=fmt, size=writer.size,
                                      sha256=writer.hash.hexdigest(), header=header,
                                      source=fields.get("source", ""),
                                      description=fields.get("description", ""))
        writer = None  # the part is the model's file now
        return model
    finally:
        hold.release()
        if writer is not None:
            await writer.discard()


async def _read_form(request: web.Request, registry: ModelRegistry, fields: dict[str, str],
                     idle: int, hold: _Hold) -> PartWriter:
    reader = await request.multipart()
    writer: PartWriter | None = None
    try:
        while (part := await _within(reader.next, idle)) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("a nested multipart part is not a model file")
            if part.filename is not None or part.name == "file":
                if writer is not None:
                    raise BadRequest("one model file per upload", param="file")
                if "name" in fields:  # the fields before the file
                    hold.take(fields["name"])
                writer = PartWriter(registry)
                if part.filename:
                    fields.setdefault("filename", part.filename)
                while chunk := await _within(lambda: part.read_chunk(_FLUSH), idle):
                    await writer.feed(chunk)
                continue
            if part.name not in FIELDS:
                raise BadRequest(f"unknown form field {part.name!r}; the fields are "
                                 f"{', '.join(FIELDS)} and the file", param=part.name)
            value = bytearray()
            while chunk := await _within(lambda: part.read_chunk(_FIELD_MAX), idle):
                value += chunk
                if len(value) > _FIELD_MAX:
                    raise BadRequest(f"form field {part.name!r} is over {_FIELD_MAX} bytes",
                                     param=part.name)
            fields[part.name] = value.decode("utf-8", "replace")
    except BaseException:
        if writer is not None:
            await writer.discard()
        raise
    if writer is None:
        raise BadRequest("the form has no file part (a part with a filename, or named "
                         "'file')", param="file")
    return writer


def _check(writer: PartWriter, fields: dict[str, str]) -> tuple[str, Format]:
    """The upload's name and format, once its bytes are all on disk."""
    sniffed = sniff(writer.head)
    if sniffed is None:
        raise _not_a_model()
    fmt = fields.get("format") or sniffed
    if fmt not in _FORMATS:
        raise BadRequest(f"format must be one of {', '.join(_FORMATS)}", param="format")
    if fmt != sniffed:
        raise EldricError(f"the file is {sniffed}, not {fmt} (by its first bytes)",
                          status=400, code="invalid_model_file", param="format")
    name = fields.get("name") or _stem(fields.get("filename", ""))
    if not name:
        raise BadRequest("the upload needs a name (a form field or ?name=)", param="name")
    want = fields.get("sha256", "").strip().lower()
    if want and want != writer.hash.hexdigest():
        raise EldricError(f"the file's sha256 is {writer.hash.hexdigest()}, not {want}",
                          status=400, code="checksum_mismatch", param="sha256")
    return name, fmt  # type: ignore[return-value]


def _stem(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    for ext in (".gguf", ".safetensors"):
        if base.lower().endswith(ext):
            return base[:-len(ext)]
    return base
