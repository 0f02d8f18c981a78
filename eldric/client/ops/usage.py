"""`eldric usage`: what the edge's clients used (requests, tokens, spend) by day, model,
client or backend, from its usage API (`GET /api/v1/usage`), as a table, `--csv` or `--json`.

With the edge's admin key every client's usage; with a client's own key, its own."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlencode

import click

from eldric.client.http import call
from eldric.client.ops.common import admin, admin_key_option, base, emit, json_option, run, table
from eldric.client.ops.keys import edge_option

GROUPS = ("day", "model", "client", "backend")  # the usage API's group_by
COUNTERS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens",
            "cost", "estimated_requests")
HEADS = ("REQUESTS", "ERRORS", "PROMPT", "COMPLETION", "CACHED", "COST", "ESTIMATED")


def _groups(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    got = [g.strip() for g in value.split(",") if g.strip()]
    bad = [g for g in got if g not in GROUPS]
    if not got or bad:
        raise click.BadParameter(f"{', '.join(bad) or 'nothing'}: give day, model, client or "
                                 "backend (or several, comma-separated: day,model)")
    return list(dict.fromkeys(got))


@click.command()
@click.option("--by", "by", default="day", show_default=True, callback=_groups,
              help="group by day, model, client or backend (the worker), or several: "
              "day,model")
@click.option("--client", default=None, help="only this client")
@click.option("--model", default=None, help="only this model")
@click.option("--from", "start", default=None, metavar="DATE",
              help="from this UTC day (YYYY-MM-DD) [default: the API's]")
@click.option("--to", "end", default=None, metavar="DATE", help="up to this UTC day")
@click.option("--csv", "as_csv", is_flag=True, help="print CSV (the table's columns)")
@edge_option
@admin_key_option
@json_option
def usage(by: list[str], client: str | None, model: str | None, start: str | None,
          end: str | None, as_csv: bool, url: str | None, admin_key: str | None,
          as_json: bool) -> None:
    """Requests, tokens and spend at the edge, per day, model, client or backend. Needs the
    edge's admin key (a client's own key shows its own usage)."""
    query = {k: v for k, v in (("group_by", ",".join(by)), ("client", client),
                                ("model", model), ("from", start), ("to", end)) if v}
    where = f"{base(url, 'url')}/api/v1/usage?{urlencode(query)}"
    key = admin(admin_key)
    got = run(lambda s: call(s, "GET", where, key=key))
    if as_csv:
        click.echo(_csv(by, got.get("rows", [])), nl=False)
        return
    emit(got, as_json, lambda: _table(by, got))


def _values(by: list[str], row: dict[str, Any]) -> list[Any]:
    return [row.get(k) for k in (*by, *COUNTERS)]


def _csv(by: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([*by, *COUNTERS])
    for row in rows:
        w.writerow(["" if v is None else v for v in _values(by, row)])
    return out.getvalue()


def _cost(value: Any) -> str:
    return "unpriced" if value is None else f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def _cells(by: list[str], row: dict[str, Any]) -> list[Any]:
    cells = _values(by, row)
    cells[len(by) + COUNTERS.index("cost")] = _cost(row.get("cost"))
    return cells


def _table(by: list[str], got: dict[str, Any]) -> str:
    rows = got.get("rows", [])
    if not rows:
        return "no usage in this period"
    total = got.get("totals") or {}
    lines = table((*(g.upper() for g in by), *HEADS),
                  [*(_cells(by, r) for r in rows),
                   ["TOTAL", *[""] * (len(by) - 1), *_cells([], total)]])
    notes = []
    if got.get("unpriced_models"):
        notes.append("unpriced (tokens only): " + ", ".join(got["unpriced_models"]))
    if got.get("dropped"):
        notes.append(f"dropped: {got['dropped']} usage rows the store could not keep")
    return "\n".join([lines, *notes])
