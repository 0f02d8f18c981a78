"""The worker's routes: thin handlers over the forwarding core."""

from __future__ import annotations

import functools

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.backends import call as native_call
from eldric.bus.routes import json_response
from eldric.errors import (NOT_HERE_HEADERS, EldricError, ModelNotFound, UpstreamTimeout,
                           UpstreamUnavailable)
from eldric.exchange import Answer, LaneRequest
from eldric.http import read_body
from eldric.roles.worker import images
from eldric.roles.worker.backends import parse_models
from eldric.roles.worker.state import WORKER, WorkerState
from eldric.serve.server import fast_post
from eldric.store.responses_hop import add_stored_routes, stateful
from eldric.stream import Target, UpstreamFailure, forward
from eldric.stream.sse import Tap
from eldric.wire import anthropic_count
from eldric.wire.cluster import covers
from eldric.wire.head import decode_head
from eldric.wire.openai import HEAD_BY_PATH, Model, ModelList, model_of
from eldric.wire import xmltools
from eldric.wire.translate import Translator
from eldric.wire.translated import TRANSLATED


log = structlog.get_logger("eldric.worker")

CHAT = "/v1/chat/completions"


def _refuse_while_loading(st: WorkerState) -> None:
    if st.loading and st.load_error:
        raise UpstreamUnavailable(st.load_error, code="model_load_failed")
    if st.loading:
        raise UpstreamUnavailable("backend embedded: the model is still loading",
                                  code="model_loading", headers={"Retry-After": "2"})


async def _relay(request: LaneRequest, body: bytes, translate: Translator | None = None,
                 tap: Tap | None = None) -> Answer:
    """Forward to the backend (a translation to its own upstream path); a backend that
    cannot be reached is marked down at once. The embedded backend's request goes to the
    llama.cpp of the model it names, loaded first if need be."""
    st = request.app[WORKER]
    _refuse_while_loading(st)
    if st.models is None:
        return await _to(request, st, st.target, body, translate, tap)
    async with st.models.using(request[keys.HOP].model or None) as target:
        return await _to(request, st, target, body, translate, tap)


async def _to(request: LaneRequest, st: WorkerState, target: Target | None, body: bytes,
              translate: Translator | None, tap: Tap | None) -> Answer:
    path = request.path if translate is None else translate.upstream_path
    try:
        if st.kind.adapter is not None:  # a native API: translated by its adapter
            resp = await native_call.send(
                request, st.kind.adapter, st.reach, body, path=path,
                model=request[keys.HOP].model or "", timeouts=st.timeouts,
                translate=translate, keep=tap)
        else:
            resp = await forward(request, target, path, body,  # type: ignore[arg-type]
                                 timeouts=st.timeouts, translate=translate, tap=tap)
    except native_call.KeyRefused:
        # Its 502 backend_auth_failed, not marked down: a 401/403 may be this request's
        # alone (Bedrock's AccessDeniedException for a model the account lacks, Gemini's
        # PERMISSION_DENIED for one tuned model); the probe, signed with the same key,
        # says whether it is the key.
        raise
    except UpstreamFailure as exc:
        request.app[keys.BUS].mark_down(st.upstream, exc)
        raise _as_error(st, exc) from None
    if resp.status == 401:
        # The client's Authorization is never passed on: a 401 refuses the worker's own
        # key. Not the client's error (its SDK would blame its own key): eldric's 502, as
        # a native kind's call answers it, which a router may try elsewhere.
        raise EldricError(f"backend {st.cfg.backend} at {st.backend_url} refused the "
                          "worker's key (HTTP 401): check --backend-api-key", status=502,
                          code="backend_auth_failed")
    # it answers: healthy again, unless it answered that it refuses the worker's key (the
    # probe's word, kept: a client's request must not put such a backend back in rotation)
    if not st.upstream.healthy and resp.status < 500 and resp.status != 403:
        request.app[keys.BUS].mark(st.upstream, True)
    return resp


def _as_error(st: WorkerState, exc: UpstreamFailure) -> Exception:
    """With one backend there is nobody to retry on: say what the backend did."""
    where = f"backend {st.cfg.backend} at {st.backend_url}"
    if exc.kind in ("connect", "timeout") and exc.status == 504:
        return UpstreamTimeout(f"{where}: {exc.message}")
    if exc.kind == "connect":
        return UpstreamUnavailable(f"{where} is down: {exc.message}")
    return exc  # the backend's own error status and (normalised) message


async def inference(request: LaneRequest) -> Answer:
    """POST /v1/chat/completions, /v1/completions, /v1/embeddings."""
    body = await read_body(request)
    head = decode_head(body, HEAD_BY_PATH[request.path])
    request[keys.HOP].model = head.model
    st = request.app[WORKER]
    if st.images and request.path == CHAT:  # most workers: not looked at at all
        body = await images.admit(request, st, body, CHAT, head.model)
    if request.path == CHAT and st.may_emulate and xmltools.wanted(body) \
            and st.emulates_tools(head.model or ""):
        body, x = xmltools.wrapped(None, body, prefill=st.kind.prefills)
        return await _relay(request, body, x)
    return await _relay(request, body)


async def translated(request: LaneRequest) -> Answer:
    """A client API path the backend lacks (eldric.wire.translated: /v1/messages,
    /api/chat…): the body translated to the backend's Chat Completions (or embeddings),
    the reply translated back, streamed included."""
    return await stateful(request, await read_body(request),
                          functools.partial(_translate, request))


async def _translate(request: LaneRequest, body: bytes, tap: Tap | None) -> Answer:
    t = TRANSLATED[request.path].factory(body)
    request[keys.HOP].model = t.model
    chat = t.request()
    st = request.app[WORKER]
    if st.images and t.upstream_path == CHAT:  # the client's images, in Chat's shape now
        chat = await images.admit(request, st, chat, CHAT, t.model)
    if t.upstream_path == CHAT and st.may_emulate and st.emulates_tools(t.model):
        chat, t = xmltools.wrapped(t, chat, prefill=st.kind.prefills)  # its tools too
    return await _relay(request, chat, t, tap)


async def native(request: LaneRequest) -> Answer:
    """A client API path the backend serves itself: relayed as it is."""
    body = await read_body(request)
    request[keys.HOP].model = model = model_of(body)
    st = request.app[WORKER]
    if st.images:
        body = await images.admit(request, st, body, request.path, model)
    if st.may_emulate and xmltools.wanted(body) and st.emulates_tools(model or ""):
        # served natively, but its tools would be dropped: translated, tools emulated
        return await stateful(request, body, functools.partial(_translate, request))
    # behind: the backend keeps responses of its own, and may know an id this worker does not
    return await stateful(request, body, lambda body, tap: _relay(request, body, tap=tap),
                          behind=True)


async def count_tokens(request: web.Request) -> Answer:
    """POST /v1/messages/count_tokens: relayed where the backend serves it (llama.cpp,
    vLLM), counted by its chat tokenizer where it has one (vLLM's /tokenize), else a
    documented estimate marked X-Eldric-Estimate (eldric.wire.anthropic_count)."""
    st = request.app[WORKER]
    body = await read_body(request)
    if st.paths is None or (covers(st.paths, request.path) and request.path not in st.kind.lacks):
        request[keys.HOP].model = model_of(body)
        return await _relay(request, body)
    c = anthropic_count.count(body)
    request[keys.HOP].model = c.model
    _refuse_while_loading(st)
    if st.kind.tokenizes_chats and (counted := await _tokenized(request, st, c)) is not None:
        return counted
    return web.Response(body=anthropic_count.reply(c.estimate()), content_type="application/json",
                        headers=anthropic_count.ESTIMATE_HEADERS)


# What a backend answers for a path it does not have (vLLM's /tokenize is optional).
_NO_SUCH_PATH = (404, 405, 501)


async def _tokenized(request: web.Request, st: WorkerState,
                     c: anthropic_count.Count) -> Answer | None:
    """The count by the backend's /tokenize; None where it has none (404 for a model it
    does serve) or fails, so the caller estimates: the estimate is documented, a 404 or
    a 502 for a count the worker can give is not. A 404 for a model the backend does not
    serve is relayed (the client asked for the wrong model)."""
    t = anthropic_count.Tokenize(c)
    try:
        resp = await forward(request, st.target, t.upstream_path, t.request(),
                             timeouts=st.timeouts, translate=t)
    except UpstreamFailure as exc:
        log.warning("tokenize_failed", error=exc.message)
        return None
    known = st.upstream.models
    if resp.status in _NO_SUCH_PATH and not (resp.status == 404 and known
                                             and c.model not in known):
        log.warning("tokenize_unserved", status=resp.status)
        return None
    return resp


async def embeddings_disabled(request: LaneRequest) -> Answer:
    """POST /v1/embeddings to the embedded llama.cpp started without --embeddings: answered
    here, naming eldric's flag (llama.cpp's own 501 names its own command line)."""
    raise EldricError("embeddings are off on this worker: start it with `eldric --role worker "
                      "--backend embedded --embeddings`", status=501,
                      code="embeddings_disabled", headers=NOT_HERE_HEADERS)


async def passthrough(request: web.Request) -> Answer:
    """Any other /v1/* path (responses, rerank, audio, images…): forwarded as it is."""
    body = await read_body(request)
    return await _relay(request, body)


async def _backend_models(request: web.Request) -> list[str]:
    """The backend's model ids, asked now (the probe's copy may be a period old)."""
    st = request.app[WORKER]
    _refuse_while_loading(st)
    if st.models is not None:  # what its models directory holds, not one llama.cpp's
        ids = st.upstream.models = st.models.rescan()
        return ids
    if st.kind.adapter is not None:
        found = await native_call.probe(request.app, st.kind.adapter, st.reach,
                                        st.timeouts.idle)
        if found.status != 200 or found.models is None:
            if found.status == 0:
                request.app[keys.BUS].mark(st.upstream, False, found.error)
            raise UpstreamUnavailable(f"backend {st.cfg.backend} at {st.backend_url}: "
                                      f"{found.error}")
        st.upstream.models = found.models
        return found.models
    session = request.app[keys.SESSION]
    try:
        async with session.get(st.backend_url + st.kind.models_path,
                               headers=st.target.headers if st.target else None,
                               timeout=aiohttp.ClientTimeout(
                                   total=None, sock_connect=st.timeouts.connect,
                                   sock_read=st.timeouts.idle)) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        request.app[keys.BUS].mark(st.upstream, False, repr(exc))
        raise UpstreamUnavailable(f"backend {st.cfg.backend} at {st.backend_url} is down: "
                                  f"{type(exc).__name__}") from None
    if status != 200:
        raise UpstreamUnavailable(f"backend {st.cfg.backend} answered HTTP {status} for its "
                                  "model list")
    try:
        ids = parse_models(st.kind, raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamUnavailable(f"backend {st.cfg.backend} sent a model list eldric cannot "
                                  f"read: {exc}") from None
    st.upstream.models = ids
    return ids


def _listed(st: WorkerState, ids: list[str]) -> list[Model]:
    """The OpenAI model objects; the embedded backend's say whether each is loaded."""
    owner = st.cfg.backend
    if st.models is not None:
        return st.models.listed(owner)  # type: ignore[return-value]
    return [Model(id=i, owned_by=owner) for i in ids]


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: the backend's own list, mapped to the OpenAI format."""
    ids = await _backend_models(request)
    return json_response(ModelList(data=_listed(request.app[WORKER], ids)))


async def model(request: web.Request) -> web.Response:
    """GET /v1/models/{id} (the SDKs' models.retrieve), from the same list."""
    wanted = request.match_info["id"]
    st = request.app[WORKER]
    found = [m for m in _listed(st, await _backend_models(request)) if m.id == wanted]
    if not found:
        raise ModelNotFound(f"the model {wanted!r} is not served here", param="model")
    return json_response(found[0])


def add_routes(app: web.Application) -> None:
    serves_embeddings = app[WORKER].serves_embeddings
    for path in HEAD_BY_PATH:
        refused = path == "/v1/embeddings" and not serves_embeddings
        fast_post(app, path, embeddings_disabled if refused else inference)
    st = app[WORKER]
    for path in TRANSLATED:
        if path in st.translated:
            fast_post(app, path, translated)
        elif st.paths is None or covers(st.paths, path):
            fast_post(app, path, native)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{id:.+}", model)
    # GET/DELETE /v1/responses/{id} when the store is on; an unknown id goes to a backend
    # that serves the path itself
    native_state = "/v1/responses" not in st.translated
    add_stored_routes(app, behind=passthrough if native_state else None)
    app.router.add_route("*", "/v1/{tail:.*}", passthrough)
