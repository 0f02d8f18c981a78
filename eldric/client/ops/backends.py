"""`eldric backends`: the backend kinds this eldric knows, role by role.

Read from the role registry (each Role's `kinds()`, filled from the role's own table),
not from a running server and not by importing a role: a third-party role that declares
kinds is listed the same way.
"""

from __future__ import annotations

from typing import Any

import click

from eldric import registry
from eldric.backends import readme
from eldric.backends.table import rows
from eldric.client.ops.common import emit, json_option, table
from eldric.errors import ConfigError


def known() -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(role -> its kinds, the roles that could not be loaded, one line each)."""
    out: dict[str, dict[str, Any]] = {}
    broken = []
    for name in sorted(registry.available()):
        try:
            role = registry.load(name)
        except ConfigError as exc:
            broken.append(f"warning: {exc}")
            continue
        if role.kinds is not None:
            out[name] = {k: dict(v) for k, v in role.kinds().items()}
    return out, broken


def _rows(found: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for role, kinds in found.items():
        for kind, facts in kinds.items():
            paths = facts.get("paths")
            providers = facts.get("providers")
            rows.append([role, kind, facts.get("default_url"),
                         ", ".join(providers) if providers else None,
                         "any" if paths is None else ", ".join(paths)])
    return rows


def _text(found: dict[str, dict[str, Any]]) -> str:
    """Every kind of the one table (what it is, its defaults and what it can do), then
    what each role makes of them."""
    kinds = table([h.upper() for h in readme.HEADERS], [readme.cells(r) for r in rows().values()])
    by_role = table(("ROLE", "KIND", "DEFAULT URL", "PROVIDERS", "PATHS"), _rows(found))
    return f"{kinds}\n\n{by_role}"


@click.command()
@json_option
def backends(as_json: bool) -> None:
    """The backend kinds eldric knows (kind, what it is, default URL, auth, tools,
    vision, embeddings, rerank, how it is tested), then each role's: a worker's
    --backend, a cloud worker's backend types (and the provider names that mean them),
    with the API paths each serves."""
    found, broken = known()
    for line in broken:
        click.echo(line, err=True)
    emit(found, as_json, lambda: _text(found))
