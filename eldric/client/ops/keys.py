"""`eldric keys`: the edge's client API keys (list, create, revoke), with the edge's
admin key. The edge has a per-client `rpm` today; budgets join here once it has them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from eldric.client.http import call
from eldric.client.ops.common import (admin, admin_key_option, ago, base, delete_at, emit,
                                      json_option, run, table, url_option)

edge_option = url_option("url", "url", "the edge")


def _edge(ctx: click.Context, given: str | None) -> str:
    return base(given or (ctx.obj or {}).get("url"), "url")


def _key(ctx: click.Context, given: str | None) -> str | None:
    return admin(given or (ctx.obj or {}).get("admin_key"))


@click.group(invoke_without_command=True)
@edge_option
@admin_key_option
@json_option
@click.pass_context
def keys(ctx: click.Context, url: str | None, admin_key: str | None, as_json: bool) -> None:
    """The clients with API keys at the edge (or create, revoke). Needs the edge's admin
    key."""
    ctx.obj = {"url": url, "admin_key": admin_key}
    if ctx.invoked_subcommand is not None:
        return
    where, key = f"{_edge(ctx, None)}/api/v1/clients", _key(ctx, None)
    got = run(lambda s: call(s, "GET", where, key=key))
    emit(got, as_json, lambda: table(("NAME", "RPM", "FROM", "CREATED", "DESCRIPTION"),
                                     map(_row, got.get("clients", [])), "no clients"))


def _row(c: dict[str, Any]) -> list[Any]:
    return [c.get("name"), c.get("rpm") or "default", "config" if c.get("static") else "created",
            ago(c.get("created")), c.get("description") or ""]


@keys.command()
@click.argument("name")
@click.option("--rpm", type=click.IntRange(min=1), default=None,
              help="its requests per minute [default: the edge's per-key limit]")
@click.option("--description", default="")
@edge_option
@admin_key_option
@json_option
@click.pass_context
def create(ctx: click.Context, name: str, rpm: int | None, description: str,
           url: str | None, admin_key: str | None, as_json: bool) -> None:
    """A new client NAME and its key, shown this once."""
    where, key = f"{_edge(ctx, url)}/api/v1/clients/register", _key(ctx, admin_key)
    body: dict[str, Any] = {"name": name, "description": description}
    if rpm is not None:
        body["rpm"] = rpm
    got = run(lambda s: call(s, "POST", where, key=key, body=body))
    emit(got, as_json, lambda: f"created {got.get('name')}"
                               f"{f' ({rpm} rpm)' if rpm else ''}; its key, shown only "
                               f"now:\n{got.get('api_key')}")


@keys.command()
@click.argument("name")
@edge_option
@admin_key_option
@json_option
@click.pass_context
def revoke(ctx: click.Context, name: str, url: str | None, admin_key: str | None,
           as_json: bool) -> None:
    """Revoke client NAME's key (it stops working at once)."""
    delete_at(f"{_edge(ctx, url)}/api/v1/clients/{quote(name, safe='')}", _key(ctx, admin_key),
              as_json, lambda _: f"revoked {name}")
