"""A fake eldric worker's model API (the contract in eldric/wire/models.py and the
issue's worker API): POST /api/v1/models/pull and …/install stream OpProgress NDJSON,
GET /api/v1/models/ops/{op_id}[?follow=true], DELETE …/ops/{op_id}, DELETE
/api/v1/models/{name}, POST /api/v1/models/show, GET /api/v1/models/local.

An operation runs in the worker whatever happens to the stream that started it (as a
real worker's does): a stream may be cut or go silent and the operation goes on. Knobs
make it fail in-band, cut or stall its first stream, forget its operations (a restart:
404 op_not_found on re-attach), hang (no progress at all) or refuse to pull.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

NDJSON = "application/x-ndjson"


class Knobs:
    def __init__(self, models: list[str] | None = None) -> None:
        self.models = list(models or [])
        self.steps = 5  # progress lines between queued and verifying
        self.step_s = 0.02
        self.total = 1000
        self.verify_s = 0.0  # time spent verifying (every byte there, not completed yet)
        self.fail_at: int | None = None  # in-band failure at this step
        self.cut_after: int | None = None  # the first stream is closed after this many lines
        self.silent_after: int | None = None  # the first stream goes quiet after this many
        self.forget_on_cut = False  # the worker "restarts" when it cuts: its ops are gone
        self.hang = False  # the operation never moves past its first line
        self.unsupported = False  # 400 pull_unsupported
        self.start_status: int | None = None  # every pull is refused with this (503: busy)
        self.garbage = False  # a line that is no OpProgress after the first
        self.follow_status: int | None = None  # ?follow=true refused with this (a proxy)
        self.key: str | None = None  # the cluster key it demands
        self.seen: list[str] = []  # "METHOD path" of every model API request
        self.bodies: list[dict] = []  # the pull/install bodies
        self.auth: list[str | None] = []


class Op:
    def __init__(self, op_id: str, model: str, total: int) -> None:
        self.line = {"op_id": op_id, "state": "queued", "model": model, "completed_bytes": 0,
                     "total_bytes": None, "message": "", "error": None, "code": None}
        self.total = total
        self.changed = asyncio.Event()
        self.task: asyncio.Task | None = None

    def set(self, **kw) -> None:  # type: ignore[no-untyped-def]
        self.line = {**self.line, **kw}
        self.changed.set()
        self.changed = asyncio.Event()

    @property
    def done(self) -> bool:
        return self.line["state"] in ("completed", "failed", "cancelled")


KNOBS = web.AppKey("knobs", Knobs)
OPS = web.AppKey("ops", dict)
STREAMS = web.AppKey("streams", set)  # the transports of open progress streams


async def kill(server) -> None:  # type: ignore[no-untyped-def]
    """The worker dies: its operations stop, its connections are reset, it is gone."""
    app = server.app
    for op in app[OPS].values():
        if op.task is not None:
            op.task.cancel()
    for transport in list(app[STREAMS]):
        transport.abort()
    await server.close()


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error",
                                        "param": None, "code": code}}, status=status)


def _refused(request: web.Request) -> web.Response | None:
    k = request.app[KNOBS]
    k.seen.append(f"{request.method} {request.path_qs}")
    k.auth.append(request.headers.get("Authorization"))
    if k.key and request.headers.get("Authorization") != f"Bearer {k.key}":
        return _error(401, "missing or invalid cluster key", "invalid_api_key")
    return None


async def _run(app: web.Application, op: Op, name: str) -> None:
    k = app[KNOBS]
    op.set(state="pulling", message="pulling manifest")
    if k.hang:
        return
    for i in range(1, k.steps + 1):
        await asyncio.sleep(k.step_s)
        if k.fail_at == i:
            op.set(state="failed", error="max retries exceeded: connection reset",
                   code="backend_error", message="pulling layer")
            return
        op.set(completed_bytes=k.total * i // k.steps, total_bytes=k.total,
               message="pulling sha256:abc")
    op.set(state="verifying", message="verifying sha256 digest")
    await asyncio.sleep(k.verify_s)
    if name not in k.models:
        k.models.append(name)
    op.set(state="completed", message="success")


async def _stream(request: web.Request, op: Op, first: bool) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": NDJSON})
    await resp.prepare(request)
    streams = request.app[STREAMS]
    streams.add(request.transport)
    try:
        return await _lines(request, resp, op, first)
    finally:
        streams.discard(request.transport)


async def _lines(request: web.Request, resp: web.StreamResponse, op: Op,
                 first: bool) -> web.StreamResponse:
    k = request.app[KNOBS]
    sent = 0
    while True:
        changed = op.changed
        await resp.write(json.dumps(op.line).encode() + b"\n")
        sent += 1
        if op.done:
            break
        if k.garbage:
            await resp.write(b'{"progress": "50%"}\n')
        if first and k.cut_after is not None and sent >= k.cut_after:
            if k.forget_on_cut:
                request.app[OPS].clear()
            assert request.transport is not None
            request.transport.close()  # cut: the operation goes on
            return resp
        if first and k.silent_after is not None and sent >= k.silent_after:
            await asyncio.sleep(3600)  # quiet, connection open (the client gives up)
        await changed.wait()
    await resp.write_eof()
    return resp


async def _start(request: web.Request, name: str, op_id: str | None) -> web.StreamResponse:
    ops = request.app[OPS]
    op_id = op_id or f"op-{len(ops) + 1}"
    op = ops.get(op_id)
    if op is None or op.done:
        op = ops[op_id] = Op(op_id, name, request.app[KNOBS].total)
        op.task = asyncio.get_running_loop().create_task(_run(request.app, op, name))
    return await _stream(request, op, first=True)


async def pull(request: web.Request) -> web.StreamResponse:
    if (refused := _refused(request)) is not None:
        return refused
    k = request.app[KNOBS]
    body = await request.json()
    k.bodies.append(body)
    if k.unsupported:
        return _error(400, "this backend cannot pull models", "pull_unsupported")
    if k.start_status is not None:
        return _error(k.start_status, "the backend is busy", "backend_error")
    return await _start(request, body["model"], body.get("op_id"))


async def install(request: web.Request) -> web.StreamResponse:
    if (refused := _refused(request)) is not None:
        return refused
    body = await request.json()
    request.app[KNOBS].bodies.append(body)
    return await _start(request, body["name"], body.get("op_id"))


def _op(request: web.Request) -> Op | web.Response:
    """The operation the path names, or the refusal (no key, 404 op_not_found)."""
    if (refused := _refused(request)) is not None:
        return refused
    op = request.app[OPS].get(request.match_info["op_id"])
    return _error(404, "no such operation", "op_not_found") if op is None else op


async def get_op(request: web.Request) -> web.StreamResponse:
    op = _op(request)
    if not isinstance(op, Op):
        return op
    if request.query.get("follow") == "true":
        if request.app[KNOBS].follow_status is not None:
            return _error(request.app[KNOBS].follow_status, "no streaming here", "busy")
        return await _stream(request, op, first=False)
    return web.json_response(op.line)


async def cancel_op(request: web.Request) -> web.Response:
    op = _op(request)
    if not isinstance(op, Op):
        return op
    if op.task is not None:
        op.task.cancel()
    if not op.done:
        op.set(state="cancelled", message="cancelled")
    return web.json_response(op.line)


async def delete_model(request: web.Request) -> web.Response:
    if (refused := _refused(request)) is not None:
        return refused
    k = request.app[KNOBS]
    name = request.match_info["name"]
    if name not in k.models:
        return _error(404, f"model {name} not found", "model_not_found")
    k.models.remove(name)
    return web.json_response({"deleted": name})


async def show(request: web.Request) -> web.Response:
    if (refused := _refused(request)) is not None:
        return refused
    name = (await request.json())["model"]
    if name not in request.app[KNOBS].models:
        return _error(404, f"model {name} not found", "model_not_found")
    return web.json_response({"modelfile": f"FROM {name}", "template": "{{ .Prompt }}",
                              "parameters": "stop <eos>", "details": {"format": "gguf"}})


async def local(request: web.Request) -> web.Response:
    if (refused := _refused(request)) is not None:
        return refused
    return web.json_response({"backend": "ollama", "models": [
        {"name": m, "size": 1000, "format": "gguf", "modified_at": "2026-12-01T10:00:00Z"}
        for m in request.app[KNOBS].models]})


def make_app(knobs: Knobs | None = None) -> web.Application:
    app = web.Application()
    app[KNOBS] = knobs or Knobs()
    app[OPS] = {}
    app[STREAMS] = set()
    r = app.router
    r.add_post("/api/v1/models/pull", pull)
    r.add_post("/api/v1/models/install", install)
    r.add_get("/api/v1/models/ops/{op_id}", get_op)
    r.add_delete("/api/v1/models/ops/{op_id}", cancel_op)
    r.add_post("/api/v1/models/show", show)
    r.add_get("/api/v1/models/local", local)
    r.add_delete("/api/v1/models/{name:.+}", delete_model)
    return app
