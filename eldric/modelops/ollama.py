"""The Ollama driver: a worker's model operations done with Ollama's own API, its replies
turned into eldric's OpProgress and LocalModel.

Ollama's formats (docs/api.md, server/routes.go and server/images.go): /api/pull and
/api/create stream NDJSON `{"status", "digest"?, "total"?, "completed"?}` lines ending in
`{"status": "success"}`; an error before the first line is an HTTP status with
`{"error"}`, after it an `{"error"}` line in a 200 (so the status alone never says it
worked: only "success" does). Pull lines per layer (`pulling <digest>`) carry that layer's
total and completed; layers are announced one by one, so the sum of totals grows.
A GGUF is installed by pushing it as a blob (HEAD|POST /api/blobs/sha256:<hex>: 201, 200
when there, 400 on a digest mismatch) and then POST /api/create {"model", "files":
{"<file>.gguf": "sha256:<hex>"}}. /api/delete answers 200 or 404; /api/show its JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec
from aiohttp import web

from eldric.errors import BadRequest, EldricError, ModelNotFound, UpstreamUnavailable
from eldric.modelops.ops import Driver, Op, OpFailed
from eldric.modelops.source import Exclusive, obtain, safe_name
from eldric.wire.models import (InstallRequest, LocalModel, LocalModels, ModelOps,
                                PullRequest)


class _Line(msgspec.Struct):
    status: str = ""
    digest: str | None = None
    total: int = 0
    completed: int = 0
    error: str | None = None


class _Error(msgspec.Struct):
    error: str = ""


class _Details(msgspec.Struct):
    format: str | None = None


class _Tag(msgspec.Struct):
    name: str
    size: int | None = None
    modified_at: str | None = None
    digest: str | None = None
    details: _Details | None = None


class _Tags(msgspec.Struct):
    models: list[_Tag] = []


_line = msgspec.json.Decoder(_Line)
_error = msgspec.json.Decoder(_Error)
_tags = msgspec.json.Decoder(_Tags)

# Pull lines after the download: the backend checks and writes (eldric's "verifying").
_VERIFYING = ("verifying", "writing manifest", "removing")
_BLOB_CHUNK = 1 << 20


def _error_of(raw: bytes, status: int) -> str:
    try:
        return _error.decode(raw).error or f"HTTP {status}"
    except msgspec.DecodeError:
        return f"HTTP {status}"


@dataclass
class Ollama:
    """Model operations on the Ollama at `base` (with `headers`, e.g. its key). `session`
    gives the process's client session (there only once the app runs); `idle` bounds the
    silence of a running stream: a stalled pull fails instead of hanging. `work_dir`
    holds a file being installed until Ollama has its copy."""

    base: str
    session: Callable[[], aiohttp.ClientSession]
    headers: Mapping[str, str] | None
    connect: float
    idle: float
    work_dir: Path
    kind: str = "ollama"
    ops = ModelOps(pull=["ollama"], install=True, delete=True)
    _busy: Exclusive = field(default_factory=Exclusive)

    def _where(self) -> str:
        return f"backend ollama at {self.base}"

    @contextlib.asynccontextmanager
    async def _call(self, method: str, path: str, **kw: object
                    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One call, its connection failure as OpFailed (during an op) — callers outside
        an op turn it into their HTTP error."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect,
                                        sock_read=self.idle)
        try:
            async with self.session().request(method, self.base + path, headers=self.headers,
                                              timeout=timeout, **kw) as resp:
                yield resp
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            raise OpFailed(f"{self._where()} is down: {exc}") from None
        except TimeoutError:
            raise OpFailed(f"{self._where()} sent nothing for {self.idle:g}s during {path} "
                           "(stalled)") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise OpFailed(f"{self._where()} broke off {path}: "
                           f"{type(exc).__name__}: {exc}") from None

    # ---------------------------------------------------------------- operations

    def pull_driver(self, req: PullRequest) -> Driver:
        if req.url is not None:
            raise BadRequest("an Ollama worker pulls models by name from the Ollama library; "
                             "a file at a URL is installed: POST /api/v1/models/install",
                             code="pull_unsupported", param="url")
        body: dict[str, object] = {"model": req.model, "stream": True}
        if req.insecure:
            body["insecure"] = True
        return lambda op: self._progress("/api/pull", body, op)

    def install_driver(self, req: InstallRequest) -> Driver:
        """The file (downloaded into work_dir, or read where it is on a shared
        filesystem) pushed as a blob, then the model created from it."""
        if req.format != "gguf":
            raise BadRequest("an Ollama worker installs GGUF files (a safetensors model "
                             "needs each of its files pushed): send format gguf",
                             code="install_unsupported", param="format")

        async def drive(op: Op) -> None:
            dest = self.work_dir / (safe_name(req.name) + ".gguf")
            async with self._busy.hold(dest, op):
                await self._install(req, dest, op)
        return drive

    async def _install(self, req: InstallRequest, dest: Path, op: Op) -> None:
        path, sha, temporary = await obtain(self.session(), req, dest, op)
        try:
            digest = "sha256:" + sha
            op.update(state="verifying", message="pushing the file to ollama")
            await self._push_blob(path, digest)
            fname = path.name if path.name.endswith(".gguf") else "model.gguf"
            await self._progress("/api/create", {"model": req.name, "stream": True,
                                                 "files": {fname: digest}}, op,
                                 creating=True)
        finally:
            if temporary:
                await asyncio.to_thread(path.unlink, missing_ok=True)

    async def _push_blob(self, path: Path, digest: str) -> None:
        async with self._call("HEAD", f"/api/blobs/{digest}") as resp:
            if resp.status == 200:
                return  # Ollama has it already
        async with self._call("POST", f"/api/blobs/{digest}", data=_file_chunks(path)) as resp:
            raw = await resp.read()
            if resp.status in (200, 201):
                return
            message = f"ollama refused the blob {digest}: {_error_of(raw, resp.status)}"
            raise OpFailed(message, "checksum_mismatch" if resp.status == 400
                           else "backend_error")

    async def _progress(self, path: str, body: dict[str, object], op: Op, *,
                        creating: bool = False) -> None:
        """POST a streaming call and follow its lines into `op` until "success"."""
        layers: dict[str, tuple[int, int]] = {}  # digest -> (total, completed)
        async with self._call("POST", path, json=body) as resp:
            if resp.status != 200:
                raw = await resp.read()
                raise OpFailed(f"ollama {path}: {_error_of(raw, resp.status)}",
                               "model_not_found" if resp.status == 404 else "backend_error")
            async for raw in resp.content:
                if not raw.strip():
                    continue
                try:
                    line = _line.decode(raw)
                except msgspec.DecodeError:
                    raise OpFailed(f"ollama {path} sent a line eldric cannot read: "
                                   f"{raw[:200]!r}") from None
                if line.error is not None:
                    raise OpFailed(f"ollama {path}: {line.error}")
                if line.status == "success":
                    op.update(message="success")
                    return  # completed (by Ops, once the model is listed)
                if line.digest and line.total and not creating:
                    layers[line.digest] = (line.total, line.completed)
                    op.update(state="pulling", message=line.status,
                              total_bytes=sum(t for t, _ in layers.values()),
                              completed_bytes=sum(c for _, c in layers.values()))
                elif creating or line.status.startswith(_VERIFYING):
                    op.update(state="verifying", message=line.status)
                else:
                    op.update(state="pulling", message=line.status)
        raise OpFailed(f"ollama ended {path} before it said success")

    # ---------------------------------------------------------------- requests

    async def _plain(self, method: str, path: str, **kw: object) -> tuple[int, bytes]:
        """A short call for a request handler: a backend that cannot be reached is 503."""
        try:
            async with self._call(method, path, **kw) as resp:
                return resp.status, await resp.read()
        except OpFailed as exc:
            raise UpstreamUnavailable(exc.message) from None

    def _refused(self, path: str, status: int, raw: bytes) -> EldricError:
        return EldricError(f"ollama {path}: {_error_of(raw, status)}", status=502,
                           code="backend_error")

    async def delete(self, name: str) -> None:
        status, raw = await self._plain("DELETE", "/api/delete", json={"model": name})
        if status == 404:
            raise ModelNotFound(f"model {name!r} is not on this worker's ollama", param="name")
        if status != 200:
            raise self._refused("/api/delete", status, raw)

    async def show(self, name: str) -> web.Response:
        """Ollama's own /api/show JSON, relayed untouched."""
        status, raw = await self._plain("POST", "/api/show", json={"model": name})
        if status == 404:
            raise ModelNotFound(f"model {name!r} is not on this worker's ollama", param="model")
        if status != 200:
            raise self._refused("/api/show", status, raw)
        return web.Response(body=raw, content_type="application/json")

    async def local(self) -> LocalModels:
        status, raw = await self._plain("GET", "/api/tags")
        if status != 200:
            raise self._refused("/api/tags", status, raw)
        try:
            tags = _tags.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise EldricError(f"ollama /api/tags sent a list eldric cannot read: {exc}",
                              status=502, code="backend_error") from None
        return LocalModels(backend="ollama", models=[
            LocalModel(name=t.name, size=t.size, modified_at=t.modified_at, digest=t.digest,
                       format=t.details.format if t.details else None) for t in tags.models])

    def file(self, name: str) -> Path | None:
        return None  # Ollama keeps its files to itself


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A file as a request body, read in a thread a MiB at a time (never all of it)."""
    f = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, _BLOB_CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(f.close)
