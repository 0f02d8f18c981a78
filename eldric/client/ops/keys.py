"""`eldric keys`: the edge's client API keys (list, create, update, revoke), with the
edge's admin key: each client's rpm and budgets (tpm, tokens per day, cost per day and
month, allowed models)."""

from __future__ import annotations

from collections.abc import Callable
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
    emit(got, as_json, lambda: table(("NAME", "RPM", "FROM", "CREATED", "BUDGETS",
                                      "DESCRIPTION"),
                                     map(_row, got.get("clients", [])), "no clients"))


def _row(c: dict[str, Any]) -> list[Any]:
    return [c.get("name"), c.get("rpm") or "default", "config" if c.get("static") else "created",
            ago(c.get("created")), budgets(c), c.get("description") or ""]


def budgets(c: dict[str, Any]) -> str:
    """A client's budgets in one cell: `tpm 1000, 50000 tokens/day, $20/month, gpt-4o*`."""
    parts = [f"tpm {c['tpm']}" if c.get("tpm") is not None else "",
             f"{c['max_tokens_per_day']} tokens/day"
             if c.get("max_tokens_per_day") is not None else "",
             f"${c['max_cost_per_day']:g}/day" if c.get("max_cost_per_day") is not None else "",
             f"${c['max_cost_per_month']:g}/month"
             if c.get("max_cost_per_month") is not None else "",
             "models " + ",".join(c["allowed_models"])
             if c.get("allowed_models") is not None else ""]
    return ", ".join(p for p in parts if p) or "-"


class _OrNone(click.ParamType):
    """A number, or `none`: the limit lifted (update only)."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = "n|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip().lower() == "none":
            return _LIFT
        return self.inner.convert(value, param, ctx)


_LIFT = object()  # sent as null
# option -> the client field it sets; its type; what it is
_BUDGETS: tuple[tuple[str, click.ParamType, str], ...] = (
    ("tpm", click.IntRange(min=1), "tokens (prompt + completion) per rate window"),
    ("max-tokens-per-day", click.IntRange(min=1), "tokens per UTC day"),
    ("max-cost-per-day", click.FloatRange(min=0), "US dollars per UTC day"),
    ("max-cost-per-month", click.FloatRange(min=0), "US dollars per UTC month"),
)


def _budget_options(lift: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The budget options of create (and of update, where `none` lifts one)."""
    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        for flag, kind, what in reversed(_BUDGETS):
            f = click.option(f"--{flag}", type=_OrNone(kind) if lift else kind, default=None,
                             help=what + (" (none: no limit)" if lift else ""))(f)
        return click.option("--allow-model", "allow_model", multiple=True, metavar="GLOB",
                            help="a model it may use (repeat; globs: gpt-4o*) [default: any"
                                 + ("; none: any again" if lift else "") + "]")(f)
    return add


def _budget_fields(given: dict[str, Any]) -> dict[str, Any]:
    """The request body's budget fields among the options given."""
    body = {}
    for flag, _, _ in _BUDGETS:
        value = given.get(flag.replace("-", "_"))
        if value is not None:
            body[flag.replace("-", "_")] = None if value is _LIFT else value
    models = given.get("allow_model") or ()
    if models:
        body["allowed_models"] = None if list(models) == ["none"] else list(models)
    return body


@keys.command()
@click.argument("name")
@click.option("--rpm", type=click.IntRange(min=1), default=None,
              help="its requests per minute [default: the edge's per-key limit]")
@click.option("--description", default="")
@_budget_options(lift=False)
@edge_option
@admin_key_option
@json_option
@click.pass_context
def create(ctx: click.Context, name: str, rpm: int | None, description: str,
           url: str | None, admin_key: str | None, as_json: bool, **budget: Any) -> None:
    """A new client NAME and its key, shown this once."""
    where, key = f"{_edge(ctx, url)}/api/v1/clients/register", _key(ctx, admin_key)
    body: dict[str, Any] = {"name": name, "description": description, **_budget_fields(budget)}
    if rpm is not None:
        body["rpm"] = rpm
    got = run(lambda s: call(s, "POST", where, key=key, body=body))
    emit(got, as_json, lambda: f"created {got.get('name')}"
                               f"{f' ({rpm} rpm)' if rpm else ''}; its key, shown only "
                               f"now:\n{got.get('api_key')}")


@keys.command()
@click.argument("name")
@click.option("--rpm", type=_OrNone(click.IntRange(min=1)), default=None,
              help="its requests per minute (none: the edge's per-key limit)")
@click.option("--description", default=None)
@_budget_options(lift=True)
@edge_option
@admin_key_option
@json_option
@click.pass_context
def update(ctx: click.Context, name: str, rpm: Any, description: str | None, url: str | None,
           admin_key: str | None, as_json: bool, **budget: Any) -> None:
    """Change client NAME's rpm, budgets or description (what is not given stays); it
    holds from its next request."""
    body = _budget_fields(budget)
    if rpm is not None:
        body["rpm"] = None if rpm is _LIFT else rpm
    if description is not None:
        body["description"] = description
    if not body:
        raise click.UsageError("nothing to change: give --rpm, --description or a budget")
    where = f"{_edge(ctx, url)}/api/v1/clients/{quote(name, safe='')}"
    got = run(lambda s: call(s, "PATCH", where, key=_key(ctx, admin_key), body=body))
    emit(got, as_json, lambda: f"updated {got.get('name')}: rpm {got.get('rpm') or 'default'}"
                               f"; budgets {budgets(got)}")


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
