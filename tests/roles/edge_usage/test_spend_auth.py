"""The spend page's sign-in and the admin cookie it sets, against a real edge: the
cookie opens /dashboard and the admin APIs (as the admin key in a header does), a
state-changing call it authenticates must come from the edge's own origin, the page is
served under the chat page's CSP, and an edge without --admin-key keeps it closed."""

from __future__ import annotations

import aiohttp

from eldric.roles.edge.admin import ADMIN_COOKIE
from tests.roles.test_edge import cluster

ADMIN = "adm-spend"


async def _login(s: aiohttp.ClientSession, edge: str, key: str, **headers: str):
    async with s.post(f"{edge}/dashboard/login", data={"admin_key": key}, headers=headers,
                      allow_redirects=False) as r:
        return r.status, r.headers.get("Location"), r.cookies.get(ADMIN_COOKIE)


async def test_sign_in_sets_the_cookie_the_admin_api_accepts(tmp_path):
    async with cluster(tmp_path, admin_key=ADMIN, api_key="sk-app") as (edge, _):
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{edge}/dashboard", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/dashboard/login"
            async with s.get(f"{edge}/dashboard/login") as r:
                page = await r.text()
                assert r.status == 200 and 'action="/dashboard/login"' in page
                assert "data-closed" not in page
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]

            # a wrong key, a client's key (not the admin's), another site's form: refused
            assert (await _login(s, edge, "nope"))[:2] == (303, "/dashboard/login?error=1")
            assert (await _login(s, edge, "sk-app"))[:2] == (303, "/dashboard/login?error=1")
            status, _, cookie = await _login(s, edge, ADMIN, Origin="http://evil.example")
            assert status == 403 and cookie is None

            status, where, cookie = await _login(s, edge, ADMIN)
            assert (status, where) == (303, "/dashboard") and cookie.value == ADMIN
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
            assert cookie["path"] == "/" and not cookie["secure"]  # plain HTTP here
            jar = {"Cookie": f"{ADMIN_COOKIE}={ADMIN}"}

            async with s.get(f"{edge}/dashboard", headers=jar, allow_redirects=False) as r:
                page = await r.text()
                assert r.status == 200 and 'src="/static/edge/spend.js"' in page
                assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
                assert "<script>" not in page  # no inline script: the CSP would refuse it
            async with s.get(f"{edge}/dashboard",
                             headers={"Cookie": f"{ADMIN_COOKIE}=wrong"},
                             allow_redirects=False) as r:
                assert r.status == 303

            async with s.get(f"{edge}/api/v1/clients", headers=jar) as r:
                assert r.status == 200
                assert "key-1" in {c["name"] for c in (await r.json())["clients"]}
            # a read from another origin (a CORS fetch with credentials) is refused too
            for path in ("/api/v1/clients", "/api/v1/usage"):
                async with s.get(f"{edge}{path}",
                                 headers={**jar, "Origin": "http://other.example"}) as r:
                    assert r.status == 403 and (await r.json())["error"]["code"] == "cross_origin"
                async with s.get(f"{edge}{path}", headers={**jar, "Origin": edge}) as r:
                    assert r.status == 200
            # a header's key is the caller's word: a wrong one is refused, cookie or not
            async with s.get(f"{edge}/api/v1/clients",
                             headers={**jar, "Authorization": "Bearer nope"}) as r:
                assert r.status == 401

            own = {**jar, "Origin": edge}
            async with s.post(f"{edge}/api/v1/clients/register", json={"name": "a"},
                              headers=own) as r:
                assert r.status == 201
            # the cookie alone changes nothing: a POST/DELETE without our Origin (a
            # form or script of another site, were the cookie sent) is refused
            for extra in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"}):
                async with s.delete(f"{edge}/api/v1/clients/a", headers={**jar, **extra}) as r:
                    assert r.status == 403
                    assert (await r.json())["error"]["code"] == "cross_origin"
            async with s.delete(f"{edge}/api/v1/clients/a", headers=own) as r:
                assert r.status == 200
            # the admin key in a header needs no Origin (scripts, `eldric keys`)
            async with s.delete(f"{edge}/api/v1/clients/a",
                                headers={"Authorization": f"Bearer {ADMIN}"}) as r:
                assert r.status == 404

            async with s.post(f"{edge}/dashboard/logout", headers=jar,
                              allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/dashboard/login"
                assert r.cookies[ADMIN_COOKIE].value == ""  # cleared


async def test_an_edge_without_an_admin_key_keeps_the_page_closed(tmp_path):
    async with cluster(tmp_path, api_key="sk-app") as (edge, _):
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{edge}/dashboard/login") as r:
                assert r.status == 200 and "<body data-closed>" in await r.text()
            assert (await _login(s, edge, "anything"))[:2] == (303, "/dashboard/login?error=1")
            # no cookie value opens it, not even the placeholder no key can match
            for value in ("", "anything"):
                async with s.get(f"{edge}/api/v1/clients",
                                 headers={"Cookie": f"{ADMIN_COOKIE}={value}"}) as r:
                    assert r.status == 401
                async with s.get(f"{edge}/dashboard", allow_redirects=False,
                                 headers={"Cookie": f"{ADMIN_COOKIE}={value}"}) as r:
                    assert r.status == 303


async def test_bad_sign_in_bodies_are_400(tmp_path):
    async with cluster(tmp_path, admin_key=ADMIN) as (edge, _):
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{edge}/dashboard/login", data=b"\xff\xfe",
                              headers={"Content-Type": "multipart/form-data"},
                              allow_redirects=False) as r:
                assert r.status == 400
                assert (await r.json())["error"]["param"] == "admin_key"
