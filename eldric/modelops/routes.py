"""The model API of a worker-like role, under /api/v1/models/ (what the controller calls):

    POST   /api/v1/models/pull            PullRequest    -> NDJSON OpProgress lines
    POST   /api/v1/models/install         InstallRequest -> NDJSON OpProgress lines
    GET    /api/v1/models/ops/{op_id}     latest OpProgress; ?follow=true: NDJSON to the end
    DELETE /api/v1/models/ops/{op_id}     cancel
    DELETE /api/v1/models/{name}          {"deleted": name}
    POST   /api/v1/models/show            {"model"}: the backend's details
    GET    /api/v1/models/local           LocalModels
    GET    /api/v1/models/files/{name}    the model file (Range), file backends only

over a small backend adapter (eldric.modelops.ollama.Ollama, eldric.modelops.files.Files).
An operation runs on in the worker when its caller leaves (eldric.modelops.ops); a second
POST with the same op_id joins it. Everything here needs the cluster key when the role has
one; errors are eldric's OpenAI-shaped JSON, and a request the backend cannot do is
refused before any stream (pull_unsupported, install_unsupported).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from eldric import keys
from eldric.auth import require_key
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, EldricError, NotFound
from eldric.http import read_body
from eldric.modelops.ops import Driver, Op, Ops
from eldric.wire.models import InstallRequest, LocalModels, ModelOps, PullRequest

NDJSON = "application/x-ndjson"
PREFIX = "/api/v1/models"
_enc = msgspec.json.Encoder()


class Backend(Protocol):
    """What a backend kind does with models (the routes call only this)."""

    kind: str
    ops: ModelOps

    def pull_driver(self, req: PullRequest) -> Driver: ...  # raises pull_unsupported
    def install_driver(self, req: InstallRequest) -> Driver: ...  # install_unsupported
    async def delete(self, name: str) -> None: ...
    async def show(self, name: str) -> web.StreamResponse: ...
    async def local(self) -> LocalModels: ...
    def file(self, name: str) -> Path | None: ...


class ModelApi:
    """The routes' state on the app: the backend (`backend_of()`, asked per request: a
    cloud worker's Ollama is whichever is enabled now; None: it does nothing with
    models), the op table and the cluster key."""

    def __init__(self, backend_of: Callable[[], Backend | None], ops: Ops, key: str | None,
                 changed: Callable[[], Awaitable[None]] | None = None):
        self.backend_of = backend_of
        self.ops = ops
        self.key = key
        self.changed = changed  # the model list changed (a delete): refresh, heartbeat

    @property
    def backend(self) -> Backend | None:
        return self.backend_of()


MODEL_API: web.AppKey[ModelApi] = web.AppKey("eldric_model_api", ModelApi)


class _Show(msgspec.Struct, forbid_unknown_fields=True):
    model: str


def _decode(raw: bytes, type_: type) -> object:
    try:
        return msgspec.json.decode(raw, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest(f"invalid body: {exc}", code="invalid_request") from None


def _api(request: web.Request) -> ModelApi:
    api = request.app[MODEL_API]
    require_key(request, api.key, "cluster key")
    return api


def _backend(api: ModelApi, what: str, code: str) -> Backend:
    if api.backend is None:
        raise BadRequest(f"this worker's backend cannot {what}", code=code)
    return api.backend


async def stream(request: web.Request, op: Op) -> web.StreamResponse:
    """The operation's lines from its current snapshot to its end. A caller that leaves
    ends only this stream: the operation goes on."""
    resp = web.StreamResponse(headers={"Content-Type": NDJSON, "X-Eldric-Op-Id": op.id})
    await resp.prepare(request)
    try:
        async for p in op.follow(request.app.get(keys.STOPPING)):
            await resp.write(_enc.encode(p) + b"\n")
    except ConnectionError:  # the caller left (without handler cancellation)
        pass
    return resp


def _check_url(url: str | None) -> None:
    """A URL the worker is to download: http(s) with a host, and one Python parses (a
    broken IPv6 host or port raises ValueError deep in a backend: a 500 otherwise)."""
    if url is None:
        return
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        ok = False
    if not ok:
        raise BadRequest(f"url {url!r} is not an http:// or https:// URL", param="url",
                         code="invalid_request")


async def _start(request: web.Request, type_: type, kind: str) -> web.StreamResponse:
    """POST pull or install: the body checked, the backend's driver (or its 400 before
    any stream), the operation started or joined, its lines streamed."""
    api = _api(request)
    req = _decode(await read_body(request), type_)
    field = "model" if kind == "pull" else "name"
    name = getattr(req, field)
    if not name:
        raise BadRequest(f"{field} is required", param=field, code="invalid_request")
    _check_url(req.url)  # type: ignore[attr-defined]
    backend = _backend(api, f"{kind} models", f"{kind}_unsupported")
    driver = backend.pull_driver(req) if kind == "pull" else backend.install_driver(req)  # type: ignore[arg-type]
    return await stream(request, api.ops.start(req.op_id, name, kind, driver))  # type: ignore[attr-defined]


async def pull(request: web.Request) -> web.StreamResponse:
    return await _start(request, PullRequest, "pull")


async def install(request: web.Request) -> web.StreamResponse:
    return await _start(request, InstallRequest, "install")


def _op(api: ModelApi, op_id: str) -> Op:
    op = api.ops.get(op_id)
    if op is None:
        raise NotFound(f"no model operation {op_id!r} on this worker (finished ones are "
                       "kept for an hour)", code="op_not_found")
    return op


async def op_status(request: web.Request) -> web.StreamResponse:
    api = _api(request)
    op = _op(api, request.match_info["op_id"])
    if request.query.get("follow", "").lower() in ("1", "true", "yes"):
        return await stream(request, op)
    return json_response(op.progress)


async def op_cancel(request: web.Request) -> web.Response:
    api = _api(request)
    _op(api, request.match_info["op_id"])
    op = await api.ops.cancel(request.match_info["op_id"])
    return json_response(op.progress)  # type: ignore[union-attr]


async def delete(request: web.Request) -> web.Response:
    api = _api(request)
    name = request.match_info["name"]
    await _backend(api, "delete models", "delete_unsupported").delete(name)
    if api.changed is not None:
        await api.changed()
    return web.json_response({"deleted": name})


async def show(request: web.Request) -> web.StreamResponse:
    api = _api(request)
    req = _decode(await read_body(request), _Show)
    assert isinstance(req, _Show)
    return await _backend(api, "describe models", "show_unsupported").show(req.model)


async def local(request: web.Request) -> web.Response:
    api = _api(request)
    if api.backend is None:
        raise EldricError("this worker's backend has no model list to show", status=501,
                          code="local_unsupported")
    return json_response(await api.backend.local())


async def files(request: web.Request) -> web.StreamResponse:
    api = _api(request)
    name = request.match_info["name"]
    path = api.backend.file(name) if api.backend is not None else None
    if path is None:
        raise NotFound(f"no model file {name!r} on this worker", code="model_not_found")
    return web.FileResponse(path)  # Range, If-Range and HEAD by aiohttp itself


def model_ops(app: web.Application) -> ModelOps:
    """What /health and the registration say this role can do with models."""
    api = app.get(MODEL_API)
    backend = api.backend if api is not None else None
    return backend.ops if backend is not None else ModelOps()


async def _closing(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[MODEL_API].ops.close()  # a stopping role leaves no download running


def add_routes(app: web.Application, api: ModelApi) -> None:
    app[MODEL_API] = api
    app.cleanup_ctx.append(_closing)
    r = app.router
    r.add_post(f"{PREFIX}/pull", pull)
    r.add_post(f"{PREFIX}/install", install)
    r.add_post(f"{PREFIX}/show", show)
    r.add_get(f"{PREFIX}/local", local)
    r.add_get(f"{PREFIX}/ops/{{op_id}}", op_status)
    r.add_delete(f"{PREFIX}/ops/{{op_id}}", op_cancel)
    r.add_get(f"{PREFIX}/files/{{name:.+}}", files)
    r.add_delete(f"{PREFIX}/{{name:.+}}", delete)  # after ops/: a name may hold / and :
