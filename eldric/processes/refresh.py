"""Admin changes reach the children: a role's state changed through its admin API is
changed in the primary (children splice those calls to it), but a child may hold the
same state in memory (the edge's API keys). After a request off the fast lane that may
have changed something (not GET/HEAD/OPTIONS, answered below 400) the primary asks every
child to run the role's refreshers (keys.REFRESH: re-read what is shared by name, the
SQLite files). Coalesced: one round at a time, another after it if changes came meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from eldric import keys
from eldric.processes import aggregate
from eldric.tasks import spawn

log = structlog.get_logger("eldric.processes")

PATH = "/_eldric/processes/refresh"  # on a child's app only: reached through its private socket
_READS = frozenset(("GET", "HEAD", "OPTIONS"))

Refresher = Callable[[], Awaitable[object]]


def add(app: web.Application, refresher: Refresher) -> None:
    """Run `refresher` in a child when its primary changed the role's state (added in
    every process: in the primary it says there is something to tell the children)."""
    app.setdefault(keys.REFRESH, []).append(refresher)


def install(app: web.Application) -> None:
    plan = app[keys.PLAN]
    if plan.child:
        app.router.add_post(PATH, _refresh)
        return
    state = {"task": None, "again": False}

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

    async def changed(request: web.Request, response: web.StreamResponse) -> None:
        if request.method in _READS or response.status >= 400 or keys.REFRESH not in app:
            return
        if state["task"] is None:
            state["task"] = spawn(rounds(), name="processes-refresh")
        else:
            state["again"] = True

    app.on_response_prepare.append(changed)


async def _refresh(request: web.Request) -> web.Response:
    for refresher in request.app.get(keys.REFRESH, []):
        try:
            await refresher()
        except Exception as exc:  # noqa: BLE001 - one failing must not stop the others
            log.warning("refresh_failed", error=f"{type(exc).__name__}: {exc}")
    return web.Response(status=204)
