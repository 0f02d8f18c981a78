"""Admin changes reach the children: a role's state changed through its admin API is
changed in the primary (children splice those calls to it), but a child may hold the
same state in memory. Two ways, each opted into by the role:

- `add(app, refresher)`: state kept in a shared file (the edge's API keys in SQLite).
  After a request off the fast lane that may have changed something (not
  GET/HEAD/OPTIONS, answered below 400) the primary asks every child to run the role's
  refreshers, which re-read it. Coalesced: one round at a time, another after it if
  changes came meanwhile.
- `replay(app, path)`: state kept only in memory, set by a call that says the whole
  change and may be made twice (the router's POST /api/v1/config: a strategy). Once the
  primary answered it below 400, the same request (method, path, headers, body) is sent
  to every child's private socket, in order, and the child's app makes the change too.
  Never for a call that creates something (a key, a download): that would be made N
  times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from eldric import keys
from eldric.processes import aggregate
from eldric.tasks import cancel, spawn

log = structlog.get_logger("eldric.processes")

PATH = "/_eldric/processes/refresh"  # on a child's app only: reached through its private socket
_READS = frozenset(("GET", "HEAD", "OPTIONS"))
REPLAY_TIMEOUT = 30.0  # a replayed call may probe (the cloud's new backend)

Refresher = Callable[[], Awaitable[object]]


def add(app: web.Application, refresher: Refresher) -> None:
    """Run `refresher` in a child when its primary changed the role's state (added in
    every process: in the primary it says there is something to tell the children).
    Nothing with one process."""
    if keys.PLAN in app:
        app.setdefault(keys.REFRESH, []).append(refresher)


def replay(app: web.Application, path: str) -> None:
    """Send the primary's successful calls of route `path` on to every child."""
    if keys.PLAN in app:
        app.setdefault(REPLAYED, set()).add(path)


REPLAYED: web.AppKey[set[str]] = web.AppKey("eldric_processes_replayed")
_HEADERS = ("Authorization", "Content-Type", "X-Api-Key")


def install(app: web.Application) -> None:
    plan = app[keys.PLAN]
    if plan.child:
        app.router.add_post(PATH, _refresh)
        return
    state: dict[str, Any] = {"task": None, "again": False}

    async def rounds() -> None:
        info = app[keys.ROLE]
        while True:
            state["again"] = False
            answers = await aggregate.ask_children(
                [plan.sock(info.name, i) for i in range(1, plan.n)], PATH, method="POST")
            if any(a is None for a in answers):
                log.debug("refresh_not_answered", missing=sum(a is None for a in answers))
            if not state["again"]:
                state["task"] = None
                return

    queue: asyncio.Queue[tuple[str, str, dict[str, str], bytes]] = asyncio.Queue()
    sender: list[asyncio.Task] = []

    async def send_on() -> None:
        info = app[keys.ROLE]
        while True:
            method, target, headers, body = await queue.get()
            answers = await aggregate.ask_children(
                [plan.sock(info.name, i) for i in range(1, plan.n)], target, method,
                headers, body, REPLAY_TIMEOUT)
            for i, a in enumerate(answers, 1):
                if a is None or a[0] >= 400:
                    log.warning("replay_failed", process=i, target=target,
                                status=a and a[0])

    async def changed(request: web.Request, response: web.StreamResponse) -> None:
        if request.method in _READS or response.status >= 400:
            return
        route = request.match_info.route.resource
        if route is not None and route.canonical in app.get(REPLAYED, ()):
            headers = {h: request.headers[h] for h in _HEADERS if h in request.headers}
            queue.put_nowait((request.method, request.path_qs, headers, await request.read()))
            if not sender:
                sender.append(spawn(send_on(), name="processes-replay"))
        if keys.REFRESH not in app:
            return
        if state["task"] is None:
            state["task"] = spawn(rounds(), name="processes-refresh")
        else:
            state["again"] = True

    async def stop(_app: web.Application) -> None:
        await cancel(state["task"])
        for task in sender:
            await cancel(task)

    app.on_response_prepare.append(changed)
    app.on_cleanup.append(stop)


async def _refresh(request: web.Request) -> web.Response:
    for refresher in request.app.get(keys.REFRESH, []):
        try:
            await refresher()
        except Exception as exc:  # noqa: BLE001 - one failing must not stop the others
            log.warning("refresh_failed", error=f"{type(exc).__name__}: {exc}")
    return web.Response(status=204)
