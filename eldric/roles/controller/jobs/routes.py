"""The controller's model API: jobs (pull, distribute, delete), their event stream, and
the fleet's models (coverage, show, one worker's list).

Mutations need the admin key (as the router settings do); reads are open, as the rest
of the controller's GETs (the dashboard reads them). Workers are called with the
cluster key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import aiohttp
import msgspec
from aiohttp import web
from aiohttp_sse import sse_response

from eldric import keys
from eldric.auth import require_key
from eldric.bus import UpstreamState
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, EldricError, ModelNotFound, NotFound, UpstreamFailure
from eldric.http import read_body
from eldric.roles.controller.jobs import targets
from eldric.roles.controller.jobs.calls import open_reply, read_whole
from eldric.roles.controller.jobs.engine import Jobs
from eldric.roles.controller.jobs.sources import Distribute, plan
from eldric.roles.controller.jobs.table import StoredJob
from eldric.roles.controller.state import CONTROLLER
from eldric.stream.failover import Failover
from eldric.wire.cluster import INFERENCE_TYPES, WorkerRecord
from eldric.wire.head import decode_head
from eldric.wire.tunnel import is_tunnel

PING_S = 15.0  # an idle event stream still says something this often (proxies, browsers)
_TIMEOUT = aiohttp.ClientTimeout(total=30)


class Pull(msgspec.Struct, forbid_unknown_fields=True):
    """POST /api/v1/models/pull (at the controller). `url`: pull that file instead (a
    backend that pulls files), installed as `model`."""

    model: str
    workers: list[str] | None = None
    backend_types: list[str] | None = None
    url: str | None = None
    sha256: str | None = None
    insecure: bool = False


class _Show(msgspec.Struct):
    model: str


def _jobs(request: web.Request) -> Jobs:
    return request.app[CONTROLLER].jobs


def _admin(request: web.Request) -> None:
    cs = request.app[CONTROLLER]
    require_key(request, cs.cfg.admin_key, "admin key")


def _accepted(job: StoredJob, **more: object) -> web.Response:
    return json_response({"job_id": job.id, "status_url": f"/api/v1/models/pull-jobs/{job.id}",
                          **more, "job": job.public()}, status=202)


def _model(name: str) -> str:
    if not name.strip():
        raise BadRequest("model must not be empty", param="model")
    return name


async def pull(request: web.Request) -> web.Response:
    _admin(request)
    jobs = _jobs(request)
    req = decode_head(await read_body(request), Pull)
    _model(req.model)
    if req.url is not None and not req.url.startswith(("http://", "https://")):
        raise BadRequest("url must be an http:// or https:// URL", param="url")
    body: dict[str, object] = {"model": req.model}
    if req.url:
        body |= {"url": req.url, **({"sha256": req.sha256} if req.sha256 else {})}
    if req.insecure:
        body["insecure"] = True
    chosen = targets.choose(jobs.registry.workers,
                            targets.can_pull("url" if req.url else "ollama"),
                            ids=req.workers, backend_types=req.backend_types)
    job = await jobs.create("pull", req.model, chosen, "pull", lambda _: dict(body))
    return _accepted(job)


async def distribute(request: web.Request) -> web.Response:
    _admin(request)
    jobs = _jobs(request)
    cfg = jobs.cfg
    req = decode_head(await read_body(request), Distribute)
    _model(req.model)
    p = await plan(req, jobs.registry.workers, jobs.session, jobs.self_url, cfg.cluster_key,
                   request.app.get(keys.MODEL_REGISTRY))
    chosen = targets.choose(jobs.registry.workers, p.able, ids=req.workers,
                            backend_types=req.backend_types,
                            also=lambda w: p.skip.get(w.id or ""))
    model = p.body.get("name", req.model)
    job = await jobs.create("distribute", str(model), chosen, p.call, lambda _: dict(p.body),
                            source=req.source, keyed=p.keyed)
    return _accepted(job)


async def delete_model(request: web.Request) -> web.Response:
    """DELETE /api/v1/models/{name}?workers=a,b: a job removing it from those workers
    (default: every worker that lists it)."""
    _admin(request)
    jobs = _jobs(request)
    name = _model(request.match_info["name"])
    given = request.query.get("workers")
    ids = [w for w in given.split(",") if w] if given else sorted(
        wid for wid, w in jobs.registry.workers.items() if name in w.models)
    if not ids:
        raise ModelNotFound(f"no worker lists {name}")
    chosen = targets.choose(jobs.registry.workers, targets.can_delete, ids=ids)
    job = await jobs.create("delete", name, chosen, "delete", lambda _: {"model": name})
    return _accepted(job)


async def list_jobs(request: web.Request) -> web.Response:
    return json_response({"jobs": [j.public() for j in _jobs(request).listing()]})


async def get_job(request: web.Request) -> web.Response:
    return json_response(_jobs(request).get(request.match_info["id"]).public())


async def cancel_job(request: web.Request) -> web.Response:
    _admin(request)
    job = await _jobs(request).cancel_job(request.match_info["id"])
    return json_response(job.public())


async def retry_job(request: web.Request) -> web.Response:
    _admin(request)
    job, again = await _jobs(request).retry(request.match_info["id"])
    return _accepted(job, retried=again)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `snapshot` ({"jobs": [...]}, first, and so again after every
    reconnect: a dashboard that lost the stream is whole again at once), then `job` (a
    job that changed, whole) and `removed` ({"id"}: forgotten from the history)."""
    jobs = _jobs(request)
    sub = jobs.subscribe()
    resp: web.StreamResponse | None = None
    try:
        async with sse_response(request, ping_interval=PING_S) as resp:
            snapshot = msgspec.json.encode({"jobs": [j.public() for j in jobs.listing()]})
            await resp.send(snapshot.decode(), event="snapshot")
            while resp.is_connected():
                try:
                    item = await asyncio.wait_for(sub.queue.get(), PING_S)
                except TimeoutError:
                    continue  # a client that left is noticed by is_connected()
                if item is None:
                    break
                event, data = item
                await resp.send(data.decode(), event=event)
    except (ConnectionResetError, RuntimeError):  # the client left mid-write
        pass
    finally:
        jobs.unsubscribe(sub)
    return resp if resp is not None else web.Response(status=499)


class _ShowFrom(Failover[WorkerRecord, web.Response]):
    """POST /api/v1/models/show: asked of each worker that has the model until one
    answers; the worker's reply relayed as it is (Ollama's /api/show, GGUF metadata)."""

    __slots__ = ("jobs", "body")

    def __init__(self, jobs: Jobs, candidates: list[WorkerRecord], body: bytes) -> None:
        Failover.__init__(self, jobs.bus, "controller", candidates)
        self.jobs = jobs
        self.body = body

    def name(self, c: WorkerRecord) -> str:
        return c.id or "?"

    def state(self, c: WorkerRecord) -> UpstreamState:
        return self.jobs.upstream(c)

    def call(self, c: WorkerRecord) -> Awaitable[web.Response]:
        return self._ask(c)

    async def _ask(self, c: WorkerRecord) -> web.Response:
        resp = await open_reply(self.jobs.session, "POST", f"{c.url}/api/v1/models/show",
                                who=self.name(c), key=self.jobs.cfg.cluster_key,
                                timeout=_TIMEOUT, body=msgspec.Raw(self.body))
        body = await read_whole(resp, self.name(c))
        self.jobs.bus.mark(self.state(c), True)
        return web.Response(body=body, content_type="application/json")


async def show(request: web.Request) -> web.Response:
    jobs = _jobs(request)
    raw = await read_body(request)
    model = _model(decode_head(raw, _Show).model)
    having = [w for w in jobs.registry.workers.values()
              if w.worker_type in INFERENCE_TYPES and w.status != "offline"
              and w.model_ops is not None and model in w.models and not is_tunnel(w.url)]
    if not having:
        raise ModelNotFound(f"no live worker that manages models has {model}")
    ask = _ShowFrom(jobs, sorted(having, key=lambda w: w.status != "healthy"),
                    msgspec.json.encode({"model": model}))
    answer = await ask.run()
    if answer is None:
        ask.exhausted(f"no worker could show {model}", none="no worker answered")
    return answer


async def worker_models(request: web.Request) -> web.Response:
    """GET /api/v1/workers/{id}/models: that worker's /api/v1/models/local, relayed."""
    jobs = _jobs(request)
    wid = request.match_info["id"]
    w = jobs.registry.workers.get(wid)
    if w is None:
        raise NotFound(f"unknown worker {wid}", code="worker_not_found")
    if is_tunnel(w.url):
        raise EldricError(f"worker {wid} is reached via tunnel ({w.url}): the controller "
                          "cannot call it", status=409, code="worker_via_tunnel")
    resp = await open_reply(jobs.session, "GET", f"{w.url}/api/v1/models/local", who=wid,
                            key=jobs.cfg.cluster_key, timeout=_TIMEOUT)
    return web.Response(body=await read_whole(resp, wid), content_type="application/json")


def add_routes(app: web.Application) -> None:
    """Before the controller's own /api/v1/models routes' catch-all: DELETE
    /api/v1/models/{name} takes names with slashes (hf.co/org/model:tag)."""
    r = app.router
    r.add_post("/api/v1/models/pull", pull)
    r.add_get("/api/v1/models/pull-jobs", list_jobs)
    r.add_get("/api/v1/models/pull-jobs/{id}", get_job)
    r.add_delete("/api/v1/models/pull-jobs/{id}", cancel_job)
    r.add_post("/api/v1/models/pull-jobs/{id}/retry", retry_job)
    r.add_post("/api/v1/models/distribute", distribute)
    r.add_post("/api/v1/models/show", show)
    r.add_get("/api/v1/models/events", events)
    r.add_get("/api/v1/workers/{id}/models", worker_models)
    r.add_delete("/api/v1/models/{name:.+}", delete_model)
