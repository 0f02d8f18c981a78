"""Admin changes reach the children: a role's state changed through its admin API is
changed in the primary (children splice those calls to it), but a child may hold the
same state in memory. Two ways, each opted into by the role:

- `add(app, refresher)`: state kept in a shared file (the edge's API keys in SQLite).
  After a call through one of the routes the role named (not GET/HEAD/OPTIONS,
  answered below 400) the primary asks every child to run the role's refreshers, which
  re-read it, before its reply goes out.
- `replay(app, path)`: state kept only in memory, set by a call that says the whole
  change and may be made twice (the router's POST /api/v1/config: a strategy). Once the
  primary answered it below 400, the same request (method, path, headers, body) is sent
  to every child's private socket, in order, and the child's app makes the change too,
  before the primary's reply goes out.
  Never for a call that creates something (a key, a download): that would be made N
  times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from eldric import keys
from eldric.processes import aggregate

log = structlog.get_logger("eldric.processes")

PATH = "/_eldric/processes/refresh"  # on a child's app only: reached through its private socket
_READS = frozenset(("GET", "HEAD", "OPTIONS"))
REPLAY_TIMEOUT = 30.0  # a replayed call may probe (the cloud's new backend)

Refresher = Callable[[], Awaitable[object]]


def add(app: web.Application, refresher: Refresher, routes: tuple[str, ...]) -> None:
    """Run `refresher` in a child when its primary answered a change through one of
    `routes` (canonical route paths: the admin calls that change that state; added in
    every process: in the primary it says there is something to tell the children).
    Nothing with one process."""
    if keys.PLAN in app:
        app.setdefault(keys.REFRESH, []).append(refresher)
        app.setdefault(REFRESHED, set()).update(routes)


def replay(app: web.Application, path: str) -> None:
    """Send the primary's successful calls of route `path` on to every child."""
    if keys.PLAN in app:
        app.setdefault(REPLAYED, set()).add(path)


REPLAYED: web.AppKey[set[str]] = web.AppKey("eldric_processes_replayed")
REFRESHED: web.AppKey[set[str]] = web.AppKey("eldric_processes_refreshed")
_HEADERS = ("Authorization", "Content-Type", "X-Api-Key")


def install(app: web.Application) -> None:
    plan = app[keys.PLAN]
    if plan.child:
        app.router.add_post(PATH, _refresh)
        return
    # One change at a time, in the order the calls were answered.
    lock = asyncio.Lock()

    async def changed(request: web.Request, response: web.StreamResponse) -> None:
        """Before the reply goes out (on_response_prepare is awaited ahead of the head):
        once the caller has it, every process has the change, so a key just made works
        on the next connection whichever process takes it."""
        if request.method in _READS or response.status >= 400:
            return
        route = request.match_info.route.resource
        if route is None:
            return
        # only the admin routes a role named: every other POST (a chat request aiohttp
        # answers when the lane is off) passes at the cost of two set lookups
        replayed = route.canonical in app.get(REPLAYED, ())
        refreshed = route.canonical in app.get(REFRESHED, ())
        if not replayed and not refreshed:
            return
        socks = [plan.sock(app[keys.ROLE].name, i) for i in range(1, plan.n)]
        async with lock:
            if replayed:
                headers = {h: request.headers[h] for h in _HEADERS if h in request.headers}
                answers = await aggregate.ask_children(
                    socks, request.path_qs, request.method, headers, await request.read(),
                    REPLAY_TIMEOUT)
                for i, a in enumerate(answers, 1):
                    if a is None or a[0] >= 400:
                        log.warning("replay_failed", process=i, target=request.path_qs,
                                    status=a and a[0])
            if refreshed:
                answers = await aggregate.ask_children(socks, PATH, method="POST")
                if any(a is None for a in answers):
                    log.warning("refresh_not_answered",
                                missing=sum(a is None for a in answers))

    app.on_response_prepare.append(changed)


async def _refresh(request: web.Request) -> web.Response:
    for refresher in request.app.get(keys.REFRESH, []):
        try:
            await refresher()
        except Exception as exc:  # noqa: BLE001 - one failing must not stop the others
            log.warning("refresh_failed", error=f"{type(exc).__name__}: {exc}")
    return web.Response(status=204)
