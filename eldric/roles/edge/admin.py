"""Who may use the edge's admin API: a caller presenting the admin key (header), or the
/dashboard page's browser carrying it in its HttpOnly cookie (the page's scripts never
see the key, so they cannot put it in a header).

A cookie is sent by the browser on its own, so a request it authenticates must come
from the edge's own pages: SameSite=Strict already keeps other sites' requests without
it; one that names another Origin is refused (a page on a sibling host is the same
"site"), and a state-changing one (anything but GET/HEAD) must carry our Origin, which
browsers send on every such fetch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eldric.auth import key_matches, presented_key, require_key
from eldric.errors import EldricError

if TYPE_CHECKING:
    from aiohttp import web

    from eldric.roles.edge.state import EdgeState

ADMIN_COOKIE = "eldric_admin"
# Without --admin-key the admin API is closed: no key can match this.
NO_ADMIN = "\x00no admin key configured\x00"
_SAFE = ("GET", "HEAD")


def same_origin(request: web.Request, *, required: bool = False) -> None:
    """Refuse a request from another site (CSRF): browsers send Origin on POST (and on
    every fetch that is not a GET); `required`: a missing Origin is refused too."""
    origin = request.headers.get("Origin")
    if (origin is None and required) or (
            origin is not None and origin != f"{request.scheme}://{request.host}"):
        raise EldricError("cross-site request refused", status=403, code="cross_origin")


def admin_cookie(request: web.Request, es: EdgeState) -> bool:
    """The request carries the admin key in the dashboard's cookie (and none in a header)."""
    return (presented_key(request) is None and es.cfg.admin_key is not None
            and key_matches(request.cookies.get(ADMIN_COOKIE), es.cfg.admin_key))


def require_admin(request: web.Request, es: EdgeState) -> None:
    """The admin key in a header, or the dashboard's cookie; without --admin-key the API is
    closed (require_key alone would treat "no key configured" as open)."""
    if admin_cookie(request, es):
        # a read too: a cross-origin fetch (an origin in cors_origins, with credentials,
        # on a sibling host SameSite counts as the same site) carries its Origin
        same_origin(request, required=request.method not in _SAFE)
        return
    require_key(request, es.cfg.admin_key or NO_ADMIN, "admin key")
