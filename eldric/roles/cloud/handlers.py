"""The cloud worker's routes: pick the backend for the model, relay or translate."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import msgspec
import structlog
from aiohttp import web

from eldric import __version__, keys
from eldric.auth import require_key
from eldric.modelops.routes import model_ops
from eldric.bus import UpstreamState
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, EldricError, ModelNotFound, NotFound
from eldric.http import read_body
from eldric.backends import images
from eldric.roles.cloud.backends import Backend, make_backend
from eldric.roles.cloud.config import BackendSpec
from eldric.roles.cloud.routing import candidates
from eldric.roles.cloud.state import CLOUD, CloudState
from eldric.store.responses_hop import add_stored_routes, stateful
from eldric.stream import UpstreamFailure
from eldric.stream.failover import Failover
from eldric.stream.sse import Tap
from eldric.wire import anthropic_count
from eldric.wire.cluster import BackendInfo, Load, WorkerHealth, covers
from eldric.wire import ollama
from eldric.wire.head import decode_head
from eldric.wire.openai import HEAD_BY_PATH, ChatHead, Head, Model, ModelList
from eldric.backends.table import CHAT
from eldric.processes import refresh as processes_refresh
from eldric.wire import xmltools
from eldric.wire.translate import Translator
from eldric.wire.translated import TRANSLATED, translatable
from eldric.wire.vision import CHAT, VisionUnsupported, maybe as maybe_images

log = structlog.get_logger("eldric.cloud")

STATIC_DIR = Path(__file__).parent / "static"
DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


class _ChatHead(ChatHead):
    """The chat head plus what usage accounting needs, decoded in the same pass."""

    stream_options: _StreamOptions | None = None


# The heads this role decodes: the chat one also reads stream_options (one decode, not two).
_HEADS = {**HEAD_BY_PATH, "/v1/chat/completions": _ChatHead}


async def inference(request: web.Request) -> web.StreamResponse:
    cs = request.app[CLOUD]
    body = await read_body(request)
    head = decode_head(body, _HEADS[request.path])
    if head.model is None:  # /v1/rerank's is optional for a worker, not here
        raise BadRequest("model is required: it names the backend's model", param="model")
    request[keys.HOP].model = head.model
    tries = _Backends(request, cs, body, head)
    return await _answer(tries)


async def translated(request: web.Request) -> web.StreamResponse:
    """A client API the providers may lack (eldric.wire.translated: /v1/messages,
    /api/chat…): relayed as it is to a backend whose kind serves it, else translated to
    Chat Completions (or embeddings) for a kind that serves those (an OpenAI-compatible
    one through the core, Anthropic's through its egress)."""
    return await stateful(request, await read_body(request),
                          functools.partial(_translated, request))


async def _translated(request: web.Request, body: bytes, keep: Tap | None
                      ) -> web.StreamResponse:
    cs = request.app[CLOUD]
    translation = TRANSLATED[request.path]
    t = translation.factory(body)
    request[keys.HOP].model = t.model
    chat = t.request()
    tries = _Backends(request, cs, body, decode_head(chat, _HEADS[t.upstream_path]))
    tries.translation = (t, chat)
    tries.keep = keep
    return await _answer(tries)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages/count_tokens: relayed where the model's backend serves it
    (Anthropic's own count); an OpenAI-compatible provider has no count of a prompt, so
    there it is the documented estimate, marked (eldric.wire.anthropic_count)."""
    cs = request.app[CLOUD]
    body = await read_body(request)
    c = anthropic_count.count(body)
    request[keys.HOP].model = c.model
    if not covers(candidates(cs, c.model)[0][0].kind.paths, request.path):  # 404 if none
        return web.Response(body=anthropic_count.reply(c.estimate()),
                            content_type="application/json",
                            headers=anthropic_count.ESTIMATE_HEADERS)
    return await _answer(_Backends(request, cs, body, Head(model=c.model)))


async def _answer(tries: _Backends) -> web.StreamResponse:
    resp = await tries.run()
    if resp is None:
        resp = tries.not_here()  # what the backends said, as they said it
    if resp is None:
        resp = tries.come_back()
    if resp is None:
        tries.exhausted("every backend serving the model failed", none="no backend serves it")
    return resp


class _Backends(Failover[tuple[Backend, str], web.StreamResponse]):
    """The backends listing the model, best first (routing.candidates)."""

    __slots__ = ("request", "cs", "body", "head", "translation", "keep", "fetched")

    def __init__(self, request: web.Request, cs: CloudState, body: bytes, head) -> None:  # type: ignore[no-untyped-def]
        # hop: each backend tried is an eldric.attempt span (its CLIENT span, made in
        # the kind's call, hangs off the hop's span: the kinds are not told the attempt's)
        Failover.__init__(self, request.app[keys.BUS], "cloud", candidates(cs, head.model),
                          hop=request[keys.HOP])
        self.request, self.cs, self.body, self.head = request, cs, body, head
        # a translated client API: (its translator, the translated body)
        self.translation: tuple[Translator, bytes] | None = None
        self.keep: Tap | None = None  # the /v1/responses store's read of a streamed reply
        self.fetched: bytes | None = None  # the chat with its image URLs fetched (_fetched)

    def name(self, c: tuple[Backend, str]) -> str:
        return c[0].name

    def state(self, c: tuple[Backend, str]) -> UpstreamState:
        return c[0].state

    def call(self, c: tuple[Backend, str]) -> Awaitable[web.StreamResponse]:
        backend, model = c
        kind, path = backend.kind, self.request.path
        if self.translation is not None and not covers(kind.paths, path):
            # Not native here: the translation goes to the kind's own call (through the
            # core, or Anthropic's egress) if the kind serves the path it is sent to (an
            # Ollama raw generate needs /v1/completions; Anthropic has no embeddings).
            t, chat = self.translation
            if t.upstream_path not in kind.paths:
                raise _unserved(backend)
            if kind.adapter is None:  # a native kind's is call.send's (the same check)
                _sees(backend, chat, t.upstream_path, model)
            self.cs.metrics.request(backend.name, model)
            if not kind.image_urls and t.upstream_path == CHAT and maybe_images(chat):
                return self._fetched(backend, model, chat, translate=t, keep=self.keep)
            if t.upstream_path == CHAT and _emulated(backend, model):
                chat, t = xmltools.wrapped(t, chat)  # a fresh emulation for each backend
            return kind.call(self.request, self.cs, backend, model, chat, self.head,
                             translate=t, keep=self.keep)
        if not covers(kind.paths, path):
            raise _unserved(backend)
        if kind.adapter is None:
            _sees(backend, self.body, path, model)  # one byte search for text
        self.cs.metrics.request(backend.name, model)
        if not kind.image_urls and path == CHAT and maybe_images(self.body):
            return self._fetched(backend, model, self.body)
        if path == CHAT and _emulated(backend, model):
            body, x = xmltools.wrapped(None, self.body)
            return kind.call(self.request, self.cs, backend, model, body, self.head,
                             translate=x)
        return kind.call(self.request, self.cs, backend, model, self.body, self.head)

    async def _fetched(self, backend: Backend, model: str, body: bytes,
                       **kw: Any) -> web.StreamResponse:
        """The call with the chat's http(s) image URLs fetched into data: URLs first (a
        kind that takes none: Ollama's), once for every backend tried."""
        if self.fetched is None:
            obj = msgspec.json.decode(body)  # its head was decoded: it is JSON
            opts = backend.options
            await images.inline(self.request.app[keys.SESSION], obj,
                                max_bytes=int(opts.get("image_max_bytes", images.MAX_BYTES)),
                                timeout=float(opts.get("image_timeout_ms",
                                                       images.TIMEOUT * 1000)) / 1000)
            self.fetched = msgspec.json.encode(obj)
        body = self.fetched
        if _emulated(backend, model):  # on the fetched chat: a fresh emulation per backend
            body, kw["translate"] = xmltools.wrapped(kw.get("translate"), body)
        return await backend.kind.call(self.request, self.cs, backend, model, body,
                                       self.head, **kw)

    def judge(self, c: tuple[Backend, str], exc: UpstreamFailure) -> None:
        backend, model = c
        self.cs.metrics.error(backend.name, model)
        if exc.retryable and exc.kind != "unsupported":
            log.warning("backend_failed", backend=backend.name, model=model, kind=exc.kind,
                        status=exc.status)


def _sees(backend: Backend, body: bytes, path: str, model: str) -> None:
    """The backend's vision check; a refusal is this candidate's "not here" (the next
    backend listing the model may see), the 400 itself when none can."""
    try:
        backend.vision.check(body, path, model)
    except VisionUnsupported as exc:
        raise exc.failure(backend.state.id) from None


def _emulated(backend: Backend, model: str) -> bool:
    """Whether the backend's options ask eldric to emulate tool calls for `model`
    (``"tools": "xml"``, or ``"xml_tools": [globs]``; eldric.wire.xmltools). A native
    kind whose adapter has no tools is emulated by eldric.backends.call itself."""
    return bool(backend.options) and xmltools.applies("native", backend.options, model)


def _unserved(backend: Backend) -> BadRequest:
    return BadRequest(f"backend {backend.name} ({backend.type}) serves "
                      f"{', '.join(backend.kind.paths)} only")


async def models(request: web.Request) -> web.Response:
    """Every model of every enabled backend, owned_by = the backend's name."""
    cs = request.app[CLOUD]
    return json_response(ModelList(data=[Model(id=m, owned_by=b.name) for m, b in cs.models()]))


async def model(request: web.Request) -> web.Response:
    """GET /v1/models/{id}: a listed model, or `backend/model` for a backend's own one."""
    cs = request.app[CLOUD]
    wanted = request.match_info["id"]
    for m, b in cs.models():
        if wanted in (m, f"{b.name}/{m}"):
            return json_response(Model(id=wanted, owned_by=b.name))
    raise ModelNotFound(f"the model {wanted!r} is not offered by any backend of this cloud "
                        "worker", param="model")


def served_paths(cs: CloudState) -> list[str]:
    """The paths this cloud worker serves, for routers, in the order the routes are
    added: those its enabled backends' kinds serve, then each client API one of them
    serves natively or serves the path its translation needs (Anthropic: chat and
    Messages, so every client API but Ollama's embeddings)."""
    live = [b for b in cs.backends.values() if b.enabled]
    native = [p for p in HEAD_BY_PATH if any(p in b.kind.paths for b in live)]
    return native + [p for p in TRANSLATED if p not in native and any(
        covers(b.kind.paths, p) or p in translatable(b.kind.paths) for b in live)] \
        + ([ollama.SHOW] if live else [])  # ollama_api answers it


def translated_paths(cs: CloudState) -> list[str]:
    """The client API paths served by translation (WorkerHealth.translated): those an
    enabled backend lacks natively but serves through the path its translation needs."""
    live = [b for b in cs.backends.values() if b.enabled]
    return [p for p in TRANSLATED if any(p in translatable(b.kind.paths) for b in live)]


class BackendCounts(msgspec.Struct, omit_defaults=False):
    """The enabled backends by state (Backend.status)."""

    total: int = 0
    healthy: int = 0
    unhealthy: int = 0
    degraded: int = 0  # answering, but their model list failed


class CloudHealth(WorkerHealth, kw_only=True):
    """The worker's WorkerHealth, plus the backends' summary."""

    backends: BackendCounts = msgspec.field(default_factory=BackendCounts)
    models_available: int = 0


def cloud_health(app: web.Application) -> CloudHealth:
    cs = app[CLOUD]
    live = [b for b in cs.backends.values() if b.enabled]
    counts = BackendCounts(total=len(live))
    for b in live:
        setattr(counts, b.status, getattr(counts, b.status) + 1)
    usable = counts.healthy + counts.degraded
    status = ("healthy" if live and counts.healthy == len(live)
              else "degraded" if usable else "unhealthy")
    active = sum(b.state.active for b in live)
    models = {m for m, _ in cs.models()}
    return CloudHealth(
        status=status, worker_id=cs.membership.worker_id if cs.membership else None,
        worker_type="cloud",
        backend=BackendInfo(type="cloud", url=app[keys.ROLE].advertise_url, healthy=usable > 0),
        models=sorted(models), load=Load(active_requests=active),
        uptime_seconds=round(time.time() - app[keys.ROLE].started, 3), version=__version__,
        paths=served_paths(cs), translated=translated_paths(cs), backends=counts, models_available=len(models),
        model_ops=model_ops(app))


def waiting_for(app: web.Application) -> str | None:
    """Ready once a backend answered its probe. No probe of its own here: these are paid
    providers, and the probe loop keeps the state current."""
    live = [b for b in app[CLOUD].backends.values() if b.enabled]
    if not live:
        return "a backend (none enabled)"
    if any(b.state.healthy for b in live):
        return None
    return "a reachable backend (" + "; ".join(
        f"{b.name}: {b.models_error or b.state.last_error or 'not probed yet'}" for b in live) + ")"


# ---------------------------------------------------------------- admin API


async def list_backends(request: web.Request) -> web.Response:
    cs = request.app[CLOUD]
    usage = cs.metrics.usage
    return json_response({"backends": [
        {**b.public(), "usage": {m: dict(zip(("requests", "errors", "prompt_tokens",
                                              "completion_tokens"), row))
                                 for m, row in usage.get(b.name, {}).items()}}
        for b in cs.ordered()]})


async def add_backend(request: web.Request) -> web.Response:
    cs = request.app[CLOUD]
    require_key(request, cs.cfg.admin_key, "admin key")
    spec = decode_head(await read_body(request), BackendSpec)
    if spec.name in cs.backends:
        raise EldricError(f"a backend named {spec.name!r} exists", status=409,
                          code="backend_exists")
    try:
        b = make_backend(spec, request.app[keys.BUS], cs.env)
    except Exception as exc:  # ConfigError: a bad spec is the caller's error here
        raise BadRequest(str(exc)) from None
    cs.backends[b.name] = b
    await request.app[keys.PROBER].now(b)
    log.info("backend_added", backend=b.name, type=b.type, healthy=b.state.healthy)
    return json_response(b.public(), status=201)


async def delete_backend(request: web.Request) -> web.Response:
    cs = request.app[CLOUD]
    require_key(request, cs.cfg.admin_key, "admin key")
    b = cs.backends.pop(request.match_info["name"], None)
    if b is None:
        raise NotFound(f"no backend named {request.match_info['name']!r}", code="backend_not_found")
    request.app[keys.BUS].remove_upstream(b.state.id)
    return json_response({"deleted": b.name})


async def test_backend(request: web.Request) -> web.Response:
    cs = request.app[CLOUD]
    require_key(request, cs.cfg.admin_key, "admin key")
    b = cs.backends.get(request.match_info["name"])
    if b is None:
        raise NotFound(f"no backend named {request.match_info['name']!r}", code="backend_not_found")
    verdict = await request.app[keys.PROBER].now(b)
    ok = verdict.healthy and b.models_error is None  # a model list was read
    return json_response({"name": b.name, "ok": ok, "auth_failed": b.auth_failed,
                          "latency_ms": b.state.latency_ms, "models": len(b.models),
                          "error": b.models_error})


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "dashboard.html", headers=DASHBOARD_HEADERS)


def add_routes(app: web.Application) -> None:
    for path in HEAD_BY_PATH:
        app.router.add_post(path, inference)
    for path in TRANSLATED:
        app.router.add_post(path, translated)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{id:.+}", model)
    add_stored_routes(app)  # GET/DELETE /v1/responses/{id}, when the store is on
    app.router.add_get("/api/v1/backends", list_backends)
    app.router.add_post("/api/v1/backends", add_backend)
    app.router.add_delete("/api/v1/backends/{name}", delete_backend)
    # --processes: each child keeps its own backends in memory, so it makes the change too
    processes_refresh.replay(app, "/api/v1/backends")
    processes_refresh.replay(app, "/api/v1/backends/{name}")
    app.router.add_post("/api/v1/backends/{name}/test", test_backend)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_static("/static/cloud/", STATIC_DIR)
