"""`eldric router config [--strategy S]`: a router's settings (GET /api/v1/config), or a
new strategy at run time (POST, with the router's admin key)."""

from __future__ import annotations

from typing import Any

import click

from eldric.client.http import call
from eldric.client.ops.common import (admin, admin_key_option, base, emit, json_option, run,
                                      url_option)


@click.group()
def router() -> None:
    """A router's settings."""


@router.command()
@click.option("--strategy", metavar="NAME",
              help="route by this strategy from now on (the router says which it knows)")
@url_option("url", "router_url", "the router")
@admin_key_option
@json_option
def config(strategy: str | None, url: str | None, admin_key: str | None,
           as_json: bool) -> None:
    """The router's strategy (and who set it), attempts, aliases, fallbacks and swarm
    settings; --strategy changes it."""
    where = f"{base(url, 'router_url')}/api/v1/config"
    if strategy is None:
        got = run(lambda s: call(s, "GET", where))
    else:
        key = admin(admin_key)
        got = run(lambda s: call(s, "POST", where, key=key, body={"strategy": strategy}))
    emit(got, as_json, lambda: _text(got))


def _text(c: dict[str, Any]) -> str:
    facts = [("strategy", f"{c.get('strategy')} (set by {c.get('strategy_source') or '?'})"),
             ("max_attempts", c.get("max_attempts")), ("max_failures", c.get("max_failures")),
             ("queue_timeout", f"{c.get('queue_timeout_ms')} ms"),
             ("aliases", _pairs(c.get("aliases"))), ("fallbacks", _pairs(c.get("fallbacks")))]
    ensembles = c.get("ensembles")
    if isinstance(ensembles, dict):
        facts.append(("ensembles", ", ".join(ensembles) or "-"))
    return "\n".join(f"{k + ':':<15}{v}" for k, v in facts)


def _pairs(d: Any) -> str:
    if not d:
        return "-"
    return ", ".join(f"{k} -> {','.join(v) if isinstance(v, list) else v}" for k, v in d.items())
