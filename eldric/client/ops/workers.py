"""`eldric workers`: the controller's registry (list, show ID, remove ID)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from eldric.client.http import call
from eldric.client.ops.common import controller as where
from eldric.client.ops.common import (admin, admin_key_option, ago, base, delete_at, emit,
                                      json_option, run, table, url_option)

controller_option = url_option("controller", "controller_url", "the controller")


def _row(w: dict[str, Any]) -> list[Any]:
    backend = w.get("backend") or {}
    load = w.get("load") or {}
    kind = backend.get("type") or "-"
    if backend and not backend.get("healthy"):
        kind += " (down)"
    return [w.get("id"), w.get("worker_type"), w.get("status"), w.get("url"), kind,
            load.get("active_requests", 0), w.get("models") or [], ago(w.get("last_heartbeat"))]


HEADERS = ("ID", "TYPE", "STATUS", "URL", "BACKEND", "ACTIVE", "MODELS", "HEARTBEAT")


@click.group(invoke_without_command=True)
@controller_option
@click.option("--routers", is_flag=True, help="list the routers instead of the workers")
@json_option
@click.pass_context
def workers(ctx: click.Context, controller: str | None, routers: bool, as_json: bool) -> None:
    """The workers registered with the controller (or `show ID`, `remove ID`)."""
    ctx.obj = {"controller": controller}
    if ctx.invoked_subcommand is not None:
        return
    url = f"{base(controller, 'controller_url')}/api/v1/workers"
    got = run(lambda s: call(s, "GET", url + ("?type=router" if routers else "")))
    emit(got, as_json, lambda: table(HEADERS, map(_row, got.get("workers", [])),
                                     "no workers registered"))


@workers.command()
@click.argument("worker_id")
@controller_option
@json_option
@click.pass_context
def show(ctx: click.Context, worker_id: str, controller: str | None, as_json: bool) -> None:
    """One worker: what it registered and what the controller saw."""
    url = f"{where(ctx, controller)}/api/v1/workers/{quote(worker_id, safe='')}"
    w = run(lambda s: call(s, "GET", url))

    def text() -> str:
        load = w.get("load") or {}
        facts = [("id", w.get("id")), ("type", w.get("worker_type")),
                 ("status", w.get("status")), ("url", w.get("url")),
                 ("backend", _backend(w.get("backend"))), ("version", w.get("version")),
                 ("models", ", ".join(w.get("models") or []) or "-"),
                 ("tags", ", ".join(w.get("tags") or []) or "-"),
                 ("load", ", ".join(f"{k} {v}" for k, v in load.items() if v is not None)),
                 ("paths", ", ".join(w.get("paths") or []) or "any"),
                 ("heartbeat", ago(w.get("last_heartbeat"))),
                 ("registered", ago(w.get("registered_at")))]
        return "\n".join(f"{k + ':':<12}{v if v not in (None, '') else '-'}" for k, v in facts)
    emit(w, as_json, text)


def _backend(b: dict[str, Any] | None) -> str:
    if not b:
        return "-"
    return f"{b.get('type')} at {b.get('url')} ({'healthy' if b.get('healthy') else 'down'})"


@workers.command()
@click.argument("worker_id")
@controller_option
@admin_key_option
@json_option
@click.pass_context
def remove(ctx: click.Context, worker_id: str, controller: str | None, admin_key: str | None,
           as_json: bool) -> None:
    """Forget a worker (it registers again if it still runs). Needs the admin key."""
    delete_at(f"{where(ctx, controller)}/api/v1/workers/{quote(worker_id, safe='')}",
              admin(admin_key), as_json, lambda _: f"removed {worker_id}")
