"""The edge's routes: authenticate, rate-limit, then relay to a router, zero-copy."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Awaitable
from pathlib import Path

import msgspec
from aiohttp import web

from eldric import keys
from eldric.auth import presented_key
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, EldricError, NotFound, RateLimited, Unauthorized
from eldric.exchange import Answer, LaneRequest
from eldric.explain import format_ms
from eldric.http import read_body
from eldric.roles.edge.admin import NO_ADMIN, require_admin, same_origin
from eldric.roles.edge.clients import SCOPES, Client, StaticClient, unknown_scope
from eldric.roles.edge.config import LIMITS, ClientSettings
from eldric.roles.edge.cors import CORS_HEADERS
from eldric.roles.edge.limits import Decision, Tier
from eldric.roles.edge.plugins import answer as plugin_answer
from eldric.roles.edge.plugins import filters, static as plugin_static
from eldric.roles.edge.routers import ToRouters
from eldric.roles.edge.state import EDGE, EdgeState
from eldric.roles.edge.usage.face import Ticket
from eldric.serve.server import fast_post
from eldric.store.responses import owner_of
from eldric.store.responses_hop import PATH as RESPONSES_PATH
from eldric.store.responses_hop import add_stored_routes, stateful
from eldric.stream.sse import Tap
from eldric.wire import ollama
from eldric.wire.head import decode_head
from eldric.wire.openai import HEAD_BY_PATH, model_of
from eldric.wire.translated import TRANSLATED

STATIC = Path(__file__).parent / "static"
CHAT_PATH = "/v1/chat/completions"  # the one API filters see; others: filters.unseen
COOKIE = "eldric_key"


def client_ip(request: LaneRequest, es: EdgeState) -> str:
    """The socket peer; X-Forwarded-For only when the peer is a trusted proxy (then the
    right-most address that is not itself a trusted proxy)."""
    peer = request.remote or ""
    if not es.trusted or not _trusted(peer, es):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, es):
            return hop
    return hops[0] if hops else peer


def _trusted(addr: str, es: EdgeState) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in es.trusted)


async def authenticate(request: LaneRequest, es: EdgeState) -> Client | None:
    """The client a request belongs to; raises 401 when a key is required and missing,
    wrong or revoked. Browsers of /chat carry the key in an HttpOnly cookie."""
    key = presented_key(request) or request.cookies.get(COOKIE)
    if key and es.plugins.tokens and (plugin := es.plugins.tokens.get(key)) is not None:
        return Client(name=plugin.client_name, static=True)  # a pipe calling the cluster
    client = await es.farm.lookup(key) if key else None
    if client is None and es.require_key:
        reason = "missing" if not key else "invalid"
        es.metrics.auth_failures.labels(reason).inc()
        raise Unauthorized("no API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
                           if not key else "invalid API key (unknown or revoked)")
    return client


def _limit_headers(d: Decision) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(d.limit), "X-RateLimit-Remaining": str(max(0, d.remaining))}


async def admit(request: LaneRequest, es: EdgeState) -> tuple[Client | None, dict[str, str]]:
    """Auth and the rate limit: the client, and the headers every reply to it carries
    (errors included)."""
    client = await authenticate(request, es)
    if client is not None and (span := request[keys.HOP].span) is not None:
        span.set_attribute("eldric.client", client.name)  # traced (eldric.trace)
    rl = es.cfg.rate_limits
    tiers = []  # a tier whose limit is 0 is off: not checked, not in the headers
    if rl.per_ip_rpm:
        tiers.append(Tier("ip", f"ip:{client_ip(request, es)}", rl.per_ip_rpm))
    if client is not None and (client.rpm or rl.per_key_rpm):
        tiers.append(Tier("key", f"key:{client.name}", client.rpm or rl.per_key_rpm))
    if rl.global_rpm:
        tiers.append(Tier("global", "global", rl.global_rpm))
    headers = dict(request.get(CORS_HEADERS, {}))
    if tiers:
        decision = await es.farm.check(tiers)
        headers.update(_limit_headers(decision))
        if not decision.allowed:
            es.metrics.rate_limited.labels(decision.tier).inc()
            raise RateLimited(f"rate limit exceeded: {decision.tier} limit of {decision.limit} "
                              f"requests per {format_ms(rl.window_ms)}",
                              code=f"rate_limit_{decision.tier}",
                              headers={**headers, "Retry-After": decision.retry_after_header})
    return client, headers


async def _to_routers(request: LaneRequest, es: EdgeState, client: Client | None, body: bytes,
                      tap: Tap | None = None, *, headers: dict[str, str]) -> Answer:
    if es.cache is not None:  # --cache off: this check is all it costs
        from eldric.roles.edge.cached import through_cache
        return await through_cache(request, es, client, body, tap, headers, _relayed,
                                   counted_hit)
    return await _relayed(request, es, client, body, tap, headers)


async def _ticket(request: LaneRequest, es: EdgeState, client: Client | None,
                  body: bytes) -> Ticket | None:
    """The request counted as the client's (its usage ticket), or only its access checked."""
    name = client.name if client else "anonymous"
    es.metrics.client_requests.labels(es.metrics.client_label(name)).inc()
    ticket = None if es.usage is None else await es.usage.begin(
        request, client, request.path, body, request[keys.HOP].model)
    if ticket is None and es.usage is None and client is not None \
            and client.allowed_models is not None:
        es.budgets.allow(client, request[keys.HOP].model or "")  # access, not counting
    return ticket


async def counted_hit(request: LaneRequest, es: EdgeState, client: Client | None,
                      body: bytes, whole: Answer) -> dict[str, str]:
    """A reply the response cache serves, counted as any request (access, budgets) with
    its tokens as cache hits and cost 0: the budget's headers for it."""
    ticket = await _ticket(request, es, client, body)
    if ticket is None:
        return {}
    await ticket.end(whole, cache_hit=True)
    return ticket.hold.headers


async def _relayed(request: LaneRequest, es: EdgeState, client: Client | None, body: bytes,
                   tap: Tap | None, headers: dict[str, str]) -> Answer:
    """Counted and sent to the routers."""
    ticket = await _ticket(request, es, client, body)
    if ticket is None:
        return await _run(ToRouters(request, es.routers, es.timeouts, body, headers, tap))
    if ticket.hold.headers:  # the budget's headers go on every reply to the client
        headers = {**headers, **ticket.hold.headers}
    answer = await _counted(ticket, _run(ToRouters(
        request, es.routers, es.timeouts, body, headers,
        ticket.tap if tap is None else _both(ticket.tap, tap), ticket.rewrite, ticket.drop)),
        headers)
    assert answer is not None
    return answer


async def _counted(ticket: Ticket, answering: Awaitable[Answer | None],
                   headers: dict[str, str]) -> Answer | None:
    """The answer, its usage counted however it ends: a client that left still counts
    what was sent. None (a plugin that does not answer it): the ticket is let go. An
    error carries `headers` (the budget's among them)."""
    answer, status, cancelled = None, None, False
    try:
        answer = await answering
        return answer
    except EldricError as exc:
        status = exc.status
        exc.headers = {**headers, **exc.headers}  # the budget's too: every reply has them
        raise
    except asyncio.CancelledError:
        cancelled = True
        raise
    finally:
        if answer is None and status is None and not cancelled:
            await ticket.release()  # not answered here: the routers' ticket counts it
        else:
            await ticket.end(answer, cancelled, status)


def _both(first: Tap, second: Tap) -> Tap:
    def tap(event: bytes) -> None:
        first(event)
        second(event)
    return tap


async def _run(routers: ToRouters) -> Answer:
    resp = await routers.run()
    if resp is None:
        resp = routers.come_back()  # every router said "come back later": as it said
    if resp is None:
        routers.exhausted("every router failed", none="no router is configured (--routers)")
    return resp


async def proxy(request: LaneRequest) -> Answer:
    """Every /v1/* request: auth, rate limit, then the routers in turn."""
    es = request.app[EDGE]
    client, headers = await admit(request, es)
    try:  # every reply from here on carries the rate-limit headers, errors included
        body = await read_body(request)
        kind = HEAD_BY_PATH.get(request.path)
        model: str | None = None
        if kind is not None and request.method == "POST":
            model = request[keys.HOP].model = decode_head(body, kind).model
        elif request.path in TRANSLATED or request.path == ollama.SHOW:
            model = request[keys.HOP].model = model_of(body)
        # the one question plugins add to the path: is any filter, tool or pipe enabled
        if es.plugins.active and request.method == "POST" and request.path != ollama.SHOW:
            return await _with_plugins(request, es, client, headers, body,
                                       model if kind or request.path in TRANSLATED
                                       else model_of(body))
        return await _to_routers(request, es, client, body, headers=headers)
    except EldricError as exc:
        exc.headers = {**headers, **exc.headers}
        raise


async def _with_plugins(request: LaneRequest, es: EdgeState, client: Client | None,
                        headers: dict[str, str], body: bytes, model: str | None) -> Answer:
    """A POST with some plugin enabled: a chat completion through the filters, then a
    pipe, the tool loop or the routers; any other body is one the filters cannot see
    (another API's shape, a path not quite the chat one): a closed filter refuses it."""
    chain = es.plugins.filters_for(model)
    if request.path != CHAT_PATH:
        filters.unseen(chain, request.path, model)
        return await _to_routers(request, es, client, body, headers=headers)
    send = functools.partial(_plugins_or_routers, request, es, client, headers)
    if chain:
        return await filters.filtered(request, chain, body,
                                      {"name": client.name if client else "anonymous"}, send)
    return await send(body)


async def _plugins_or_routers(request: LaneRequest, es: EdgeState, client: Client | None,
                              headers: dict[str, str], body: bytes) -> Answer:
    """A pipe's answer or the tool loop's (after the filters' inlet), else the routers'.
    The tool loop's is counted here (its rounds go to the routers past _to_routers); a
    pipe's is not: its calls to the cluster come back through the edge, counted there."""
    ticket = None
    if es.usage is not None and not await plugin_answer.is_virtual(
            es.plugins, request[keys.HOP].model or ""):
        ticket = await es.usage.begin(request, client, request.path, body,
                                      request[keys.HOP].model)
    if ticket is None:
        answer = await plugin_answer.answered(request, es, client, body, headers)
    else:
        held = {**headers, **ticket.hold.headers}
        answer = await _counted(ticket, plugin_answer.answered(request, es, client, body,
                                                               held), held)
    if answer is not None:
        return answer
    return await _to_routers(request, es, client, body, headers=headers)


async def models(request: web.Request) -> Answer:
    """GET /v1/models and /v1/models/{id}: the routers' answer; with a pipe plugin
    enabled, its virtual models too."""
    es = request.app[EDGE]
    wanted = request.match_info.get("id")
    if not es.plugins.pipes or (wanted is not None
                                and not await plugin_answer.is_virtual(es.plugins, wanted)):
        return await proxy(request)
    client, headers = await admit(request, es)
    plugin_answer.count(es, client.name if client else "anonymous")
    try:
        if wanted is None:
            resp = json_response(await plugin_answer.models(request, es, headers))
        else:
            resp = json_response(plugin_answer.model(es.plugins, wanted))
        resp.headers.update(headers)
        return resp
    except EldricError as exc:
        exc.headers = {**headers, **exc.headers}
        raise


# ---------------------------------------------------------------- /v1/responses state


def _owner_of(request: LaneRequest, client: Client | None) -> str:
    """Whose responses: the client's key; on an open edge, the key presented, known or
    not (its digest, like a worker's or a router's: callers stay apart by their token),
    "" without one."""
    if client is not None:
        return client.key_hash
    return owner_of(presented_key(request) or request.cookies.get(COOKIE))


async def _owner(request: LaneRequest) -> tuple[str, dict[str, str]]:
    """The client's key (its digest: owner_of) owns what it stores; and the headers."""
    client, headers = await admit(request, request.app[EDGE])
    return _owner_of(request, client), headers


async def responses(request: LaneRequest) -> Answer:
    """POST /v1/responses: as proxy, with the edge's store of responses around it
    (eldric.store.responses_hop): previous_response_id expanded, the reply kept."""
    es = request.app[EDGE]
    client, headers = await admit(request, es)
    try:
        body = await read_body(request)
        model = request[keys.HOP].model = model_of(body)
        if es.plugins.active:
            filters.unseen(es.plugins.filters_for(model), request.path, model)
        return await stateful(request, body, functools.partial(
            _to_routers, request, es, client, headers=headers),
            _owner_of(request, client))
    except EldricError as exc:
        exc.headers = {**headers, **exc.headers}
        raise


# ---------------------------------------------------------------- clients (admin)


class NewClient(ClientSettings, forbid_unknown_fields=True, kw_only=True):
    """A client's name, and the settings a static client has in auth.clients."""

    name: str


# PATCH /api/v1/clients/{name}: the same settings, each optional; null lifts a limit.
ClientPatch = msgspec.defstruct(
    "ClientPatch", [(f.name, f.type | msgspec.UnsetType, msgspec.UNSET)  # type: ignore[misc]
                    for f in msgspec.structs.fields(ClientSettings)],
    kw_only=True, forbid_unknown_fields=True)


def _scopes_known(scopes: list[str] | None) -> None:
    if (scope := unknown_scope(scopes)) is not None:
        raise BadRequest(f"unknown scope {scope!r} (scopes: {', '.join(SCOPES)})",
                         param="scopes", code="unknown_scope")


def _exact_here(request: web.Request, es: EdgeState, settings: dict) -> None:
    """A client's limits and budgets need one count for all the edge's processes
    (--processes): the farm's Redis. Without it they are refused, not counted apart."""
    processes = request.app[keys.ROLE].processes
    if processes > 1 and es.cfg.mode != "farm":
        for name in LIMITS:
            if settings.get(name) is not None:
                raise BadRequest(f"{name}: this edge runs --processes {processes} without "
                                 "farm mode, where each process would count apart; a "
                                 "client's limits and budgets need --mode farm --redis-url",
                                 param=name, code="limits_need_farm")


async def register_client(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    _require_admin(request, es)
    new = decode_head(await read_body(request), NewClient)
    if not new.name.strip() or len(new.name) > 100:
        raise BadRequest("name must be 1 to 100 characters", param="name")
    _scopes_known(new.scopes)
    fields = msgspec.structs.asdict(new)
    _exact_here(request, es, fields)
    name, description, rpm = fields.pop("name"), fields.pop("description"), fields.pop("rpm")
    try:
        client, key = await es.farm.admin(es.clients.create(name, description, rpm, **fields))
    except KeyError:
        raise EldricError(f"a client named {new.name!r} exists", status=409,
                          code="client_exists") from None
    # The one time this key is ever shown.
    return json_response({**client.public(), "api_key": key}, status=201)


async def list_clients(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    _require_admin(request, es)
    clients = await es.farm.admin(es.clients.all())
    spent = await es.farm.admin(es.budgets.usage(clients))  # what each budget has used
    return json_response({"clients": [{**c.public(), "usage": spent[c.name]} for c in clients]})


async def revoke_client(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    _require_admin(request, es)
    name = request.match_info["name"]
    done = await es.farm.admin(es.clients.revoke(name))
    if done is None:
        raise BadRequest(f"{name!r} is a key from the configuration: remove it there",
                         code="static_client")
    if not done:
        raise NotFound(f"no client named {name!r}", code="client_not_found")
    return json_response({"revoked": name})


async def update_client(request: web.Request) -> web.Response:
    """PATCH /api/v1/clients/{name}: the fields given replace the client's (rpm, scopes,
    budgets, description); effective on its next request, on every edge."""
    es = request.app[EDGE]
    _require_admin(request, es)
    name = request.match_info["name"]
    patch = decode_head(await read_body(request), ClientPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    if not changes:
        raise BadRequest("nothing to change: give rpm, scopes, description or a budget "
                         f"({', '.join(f.name for f in msgspec.structs.fields(ClientSettings))})")
    _scopes_known(changes.get("scopes"))  # type: ignore[arg-type]
    _exact_here(request, es, changes)
    try:
        client = await es.farm.admin(es.clients.update(name, changes))
    except KeyError:
        raise NotFound(f"no client named {name!r}", code="client_not_found") from None
    except StaticClient:
        raise BadRequest(f"{name!r} is a key from the configuration: change it there "
                         "(auth.clients)", code="static_client") from None
    return json_response(client.public())


def _require_admin(request: web.Request, es: EdgeState) -> None:
    """The admin key in a header, or the dashboard's cookie (admin.py); without
    --admin-key the admin API is closed."""
    require_admin(request, es)


async def upstreams(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    return json_response({"routers": [s.snapshot() for s in es.routers.states]})


# ---------------------------------------------------------------- the chat page

# The pages load only their own files: no inline script, nothing from elsewhere.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the
    # login form post, and the cross-site check below would refuse our own page.
    "Referrer-Policy": "same-origin",
}


def _same_origin(request: web.Request) -> None:
    """Refuse a form post from another site (login CSRF): browsers send Origin on POST."""
    same_origin(request)


@functools.cache
def _chat_page(keyless: bool) -> bytes:
    """chat.html; on an edge that needs no key, marked so (`<body data-keyless>`): the page
    then offers no sign-out and never sends anyone to a login no key can pass."""
    page = (STATIC / "chat.html").read_bytes()
    return page.replace(b"<body>", b"<body data-keyless>", 1) if keyless else page


async def chat(request: web.Request) -> web.StreamResponse:
    es = request.app[EDGE]
    if es.require_key:
        key = request.cookies.get(COOKIE)
        if not key or await es.farm.lookup(key) is None:
            raise web.HTTPSeeOther("/login")
    return web.Response(body=_chat_page(not es.require_key), content_type="text/html",
                        charset="utf-8", headers=_PAGE_HEADERS)


async def login_page(request: web.Request) -> web.StreamResponse:
    if not request.app[EDGE].require_key:
        raise web.HTTPSeeOther("/chat")  # nothing to sign in to
    return web.FileResponse(STATIC / "login.html", headers=_PAGE_HEADERS)


async def form_key(request: web.Request, field: str) -> str:
    """The key a sign-in form posted (from our own origin only), stripped."""
    _same_origin(request)
    try:
        form = await request.post()
    except (ValueError, web.HTTPException, UnicodeDecodeError, AssertionError):
        raise BadRequest(f"expected a form with {field}", param=field) from None
    return str(form.get(field, "")).strip()


async def login(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    key = await form_key(request, "api_key")
    if not key or await es.farm.lookup(key) is None:
        es.metrics.auth_failures.labels("login").inc()
        raise web.HTTPSeeOther("/login?error=1")
    resp = web.HTTPSeeOther("/chat")
    resp.set_cookie(COOKIE, key, httponly=True, secure=es.tls, samesite="Strict", path="/",
                    max_age=30 * 24 * 3600)
    raise resp


async def logout(request: web.Request) -> web.Response:
    _same_origin(request)
    resp = web.HTTPSeeOther("/login" if request.app[EDGE].require_key else "/chat")
    resp.del_cookie(COOKIE, path="/")
    raise resp


def add_routes(app: web.Application) -> None:
    r = app.router
    for path in HEAD_BY_PATH:  # the inference routes also take the fast lane
        fast_post(app, path, proxy)
    for path in TRANSLATED:  # the client APIs workers translate (/v1/messages, /api/chat…)
        fast_post(app, path, responses if path == RESPONSES_PATH else proxy)
    fast_post(app, ollama.SHOW, proxy)  # Ollama's model endpoints, answered by the routers
    for path in ollama.LISTING:
        r.add_get(path, proxy)
    add_stored_routes(app, _owner)  # GET/DELETE /v1/responses/{id}, when the store is on
    r.add_get("/v1/models", models)  # with a pipe enabled, its virtual models too
    r.add_get("/v1/models/{id}", models)
    r.add_route("*", "/v1/{tail:.*}", proxy)
    r.add_post("/api/v1/clients/register", register_client)
    r.add_get("/api/v1/clients", list_clients)
    r.add_delete("/api/v1/clients/{name}", revoke_client)
    r.add_patch("/api/v1/clients/{name}", update_client)
    r.add_get("/api/v1/upstreams", upstreams)
    r.add_get("/chat", chat)
    r.add_get("/", root)
    r.add_get("/login", login_page)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_static("/static/edge/", STATIC)
    plugin_static.add_routes(app, _page_plugins, _page_auth)  # /plugins/<id>/…


def _page_plugins(request: web.Request) -> list[plugin_static.PagePlugin]:
    return [plugin_static.PagePlugin(p.id, p.manifest.type, p.manifest.name, p.manifest.entry,
                                     p.directory)
            for p in request.app[EDGE].plugins.page if p.manifest is not None]


async def _page_auth(request: web.Request) -> None:
    """Whoever may open /chat (the key, or the chat page's cookie) may load its plugins."""
    await authenticate(request, request.app[EDGE])


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/chat")
