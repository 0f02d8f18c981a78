"""The registry's HTTP API (/api/v1/model-registry), the same on every role that serves it.

Changes (upload, delete) need the role's admin key; reads (list, metadata, download) take
the admin key or the cluster key (a worker downloading with the key the controller gave
it). A role without an admin key guards changes with its cluster key; with neither, the
registry is open, as the role's other routes are.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass

from aiohttp import web

from eldric import keys
from eldric.auth import key_matches, presented_key, require_key
from eldric.bus.routes import json_response
from eldric.errors import EldricError, NotFound, Unauthorized, error_json
from eldric.model_registry.store import ModelRegistry
from eldric.model_registry.upload import precheck, receive
from eldric.serve.aiohttp_glue import no_continue, send_continue
from eldric.wire.model_registry import RegistryModel, RegistryModels

PREFIX = "/api/v1/model-registry"
_CHUNK = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Guard:
    admin_key: str | None
    cluster_key: str | None

    def change(self, request: web.Request) -> None:
        require_key(request, self.admin_key or self.cluster_key,
                    "admin key" if self.admin_key else "cluster key")

    def read(self, request: web.Request) -> None:
        allowed = [k for k in (self.admin_key, self.cluster_key) if k]
        if not allowed:
            return
        presented = presented_key(request)
        if not any(key_matches(presented, k) for k in allowed):
            raise Unauthorized(f"{'missing' if presented is None else 'invalid'} key; send the "
                               "admin or cluster key as 'Authorization: Bearer KEY' or "
                               "'X-API-Key: KEY'")


GUARD: web.AppKey[Guard] = web.AppKey("eldric_model_registry_guard", Guard)


def _registry(request: web.Request) -> ModelRegistry:
    return request.app[keys.MODEL_REGISTRY]


def _model(request: web.Request) -> RegistryModel:
    ref = request.match_info["id"]
    model = _registry(request).get(ref)
    if model is None:
        raise NotFound(f"the registry has no model {ref!r}", code="registry_model_not_found")
    return model


async def list_models(request: web.Request) -> web.Response:
    request.app[GUARD].read(request)
    return json_response(RegistryModels(models=_registry(request).list()))


async def get_model(request: web.Request) -> web.Response:
    request.app[GUARD].read(request)
    return json_response(_model(request))


async def delete_model(request: web.Request) -> web.Response:
    request.app[GUARD].change(request)
    model = await _registry(request).delete(_model(request).id)
    assert model is not None
    return json_response({"deleted": model.id, "name": model.name})


async def upload(request: web.Request) -> web.Response:
    registry = _registry(request)
    try:
        request.app[GUARD].change(request)
        precheck(request, registry)
        await send_continue(request)  # only now: a refused client never sends the file
        model = await receive(request, registry)
    except EldricError as exc:
        if request.content.is_eof():
            raise
        # Refused with the body unread: answer, then close (reading gigabytes to keep
        # the connection would be the cost the refusal saves).
        resp = web.Response(status=exc.status, body=exc.body(), content_type="application/json",
                            headers=exc.headers)
        resp.force_close()
        return resp
    return json_response(model, status=201)


def _etag(model: RegistryModel) -> str:
    return f'"{model.sha256}"'


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single `bytes=` range; None: unsatisfiable or not one
    this server serves (several ranges)."""
    m = _RANGE.match(header.strip())
    if m is None or not (m[1] or m[2]):
        return None
    if not m[1]:  # the last N bytes
        n = int(m[2])
        return (max(0, size - n), size) if n else None
    start = int(m[1])
    end = min(int(m[2]) + 1, size) if m[2] else size
    return (start, end) if start < end else None


async def download(request: web.Request) -> web.StreamResponse:
    """The file, with Range (one range; a resumed download asks for `bytes=N-`), If-Range
    and If-None-Match against the ETag (its sha256)."""
    request.app[GUARD].read(request)
    model = _model(request)
    etag = _etag(model)
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
               "Content-Disposition": f'attachment; filename="{model.filename}"'}
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers={"ETag": etag})
    try:
        f = open(model.path, "rb")  # noqa: SIM115 - closed below, after the last byte
    except FileNotFoundError:
        raise NotFound(f"the registry's file of {model.name!r} is gone",
                       code="registry_model_not_found") from None
    try:
        size = os.fstat(f.fileno()).st_size
        start, end, status = 0, size, 200
        wanted = request.headers.get("Range")
        if wanted is not None and request.headers.get("If-Range", etag) == etag:
            span = _byte_range(wanted, size)
            if span is None:
                return web.Response(status=416, content_type="application/json",
                                    headers={"Content-Range": f"bytes */{size}"},
                                    body=error_json(416, f"range {wanted!r} is not within the "
                                                    f"file's {size} bytes",
                                                    code="range_not_satisfiable"))
            (start, end), status = span, 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = end - start
        await resp.prepare(request)
        if request.method != "HEAD":
            await _send(resp, f, start, end)
        await resp.write_eof()
        return resp
    finally:
        f.close()


async def _send(resp: web.StreamResponse, f, start: int, end: int) -> None:  # type: ignore[no-untyped-def]
    """The file's bytes [start, end), read in a thread a chunk at a time (uvloop has no
    sendfile); resp.write waits while the client's socket is full."""
    fd = f.fileno()
    pos = start
    while pos < end:
        chunk = await asyncio.to_thread(os.pread, fd, min(_CHUNK, end - pos), pos)
        if not chunk:  # cut short on disk (a registry never rewrites a file; an operator
            resp.force_close()  # might): the client sees a short body and resumes
            return
        pos += len(chunk)
        await resp.write(chunk)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX, list_models)
    r.add_post(f"{PREFIX}/upload", upload, expect_handler=no_continue)
    r.add_get(f"{PREFIX}/{{id}}", get_model)
    r.add_delete(f"{PREFIX}/{{id}}", delete_model)
    r.add_get(f"{PREFIX}/{{id}}/download", download)

