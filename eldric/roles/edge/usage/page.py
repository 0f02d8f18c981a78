"""The spend page: GET /dashboard (spend and tokens over time, top clients and models,
budget use, the clients list with create / revoke / edit budget) and its admin sign-in.

The page is static files (static/spend.*) that read only the public admin APIs
(/api/v1/usage, /api/v1/clients): what the page shows, `eldric usage` and a script see
alike. Signing in puts the admin key in an HttpOnly, SameSite=Strict cookie (Secure on
TLS) that those APIs accept as they accept the key in a header (admin.py); without
--admin-key the admin API is closed and so is the page (its sign-in says so).
"""

from __future__ import annotations

import functools

from aiohttp import web

from eldric.auth import key_matches
from eldric.roles.edge.admin import ADMIN_COOKIE, admin_cookie, same_origin
from eldric.roles.edge.handlers import _PAGE_HEADERS, STATIC, form_key
from eldric.roles.edge.state import EDGE

PATH = "/dashboard"
LOGIN = "/dashboard/login"


@functools.cache
def _login_page(closed: bool) -> bytes:
    """spend-login.html; on an edge without --admin-key marked `<body data-closed>`: the
    page says no key can open it, rather than refusing every key typed."""
    page = (STATIC / "spend-login.html").read_bytes()
    return page.replace(b"<body>", b"<body data-closed>", 1) if closed else page


def _html(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/html", charset="utf-8",
                        headers={**_PAGE_HEADERS, "Cache-Control": "no-store"})


async def dashboard(request: web.Request) -> web.StreamResponse:
    if not admin_cookie(request, request.app[EDGE]):
        raise web.HTTPSeeOther(LOGIN)
    return _html((STATIC / "spend.html").read_bytes())


async def login_page(request: web.Request) -> web.StreamResponse:
    return _html(_login_page(request.app[EDGE].cfg.admin_key is None))


async def login(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    key = await form_key(request, "admin_key")
    if es.cfg.admin_key is None or not key_matches(key, es.cfg.admin_key):
        es.metrics.auth_failures.labels("dashboard").inc()
        raise web.HTTPSeeOther(f"{LOGIN}?error=1")
    resp = web.HTTPSeeOther(PATH)
    # path /: the page's scripts call /api/v1/… with it
    resp.set_cookie(ADMIN_COOKIE, key, httponly=True, secure=es.tls, samesite="Strict",
                    path="/", max_age=12 * 3600)
    raise resp


async def logout(request: web.Request) -> web.Response:
    same_origin(request)
    resp = web.HTTPSeeOther(LOGIN)
    resp.del_cookie(ADMIN_COOKIE, path="/")
    raise resp


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, dashboard)
    app.router.add_get(LOGIN, login_page)
    app.router.add_post(LOGIN, login)
    app.router.add_post("/dashboard/logout", logout)
