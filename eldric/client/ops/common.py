"""What every operator command shares: where it connects (flag > ELDRIC_* > client.json >
the quick start), `--json` or a table, and failures as one line with a non-zero exit."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

import aiohttp
import click

from eldric.client import settings
from eldric.client.http import ApiError, call

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def fail(line: str) -> None:
    click.echo(line, err=True)
    sys.exit(1)


def run(work: Callable[[aiohttp.ClientSession], Coroutine[Any, Any, T]],
        interrupted: Callable[[], str] = lambda: "interrupted") -> T:
    """`work(session)` on a fresh event loop; an ApiError is its one line and exit 1,
    Ctrl-C the line `interrupted()` says and exit 130, without a traceback."""
    async def main() -> T:
        async with aiohttp.ClientSession() as session:
            return await work(session)
    try:
        return asyncio.run(main())
    except ApiError as exc:
        fail(exc.line())
    except KeyboardInterrupt:
        click.echo(interrupted(), err=True)
        sys.exit(130)
    raise AssertionError("unreachable")


def config() -> settings.Settings:
    try:
        return settings.load()
    except settings.SettingsError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


def url_option(name: str, field: str, what: str) -> Callable[[F], F]:
    """--NAME URL, defaulting to the settings' `field` (resolved when the command runs, so
    --help works with a broken client.json)."""
    return click.option(f"--{name}", name.replace("-", "_"), metavar="URL", default=None,
                        help=f"{what} [default: ${_env(field)}, client.json "
                             f"{field}, or {getattr(settings.Settings(), field)}]")


def _env(field: str) -> str:
    return settings.ENV[field]


def admin_key_option(f: F) -> F:
    return click.option("--admin-key", "admin_key", default=None, metavar="KEY",
                        help="the role's admin key [default: $ELDRIC_ADMIN_KEY or "
                             "client.json admin_key]")(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="print the API's JSON instead of a table")(f)


def base(given: str | None, field: str) -> str:
    return (given or getattr(config(), field)).rstrip("/")


def controller(ctx: click.Context, given: str | None) -> str:
    """--controller given to this command, else to its group (`eldric workers
    --controller URL show ID`: click hands the group's ctx.obj down), else the settings'."""
    return base(given or (ctx.obj or {}).get("controller"), "controller_url")


def admin(given: str | None) -> str | None:
    return given or config().admin_key


def emit(data: Any, as_json: bool, table: Callable[[], str]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else table())


def delete_at(url: str, key: str | None, as_json: bool, said: Callable[[Any], str]) -> None:
    """DELETE url with the admin key; the answer as JSON, or `said(answer)`."""
    got = run(lambda s: call(s, "DELETE", url, key=key))
    emit(got, as_json, lambda: said(got))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "") -> str:
    """Columns padded to their widest cell; the last column runs free."""
    cells = [[_cell(v) for v in row] for row in rows]
    if not cells:
        return empty or "(none)"
    widths = [max(len(r[i]) for r in [list(headers), *cells]) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [list(headers), *cells]]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return str(value)


def ago(ts: float | None) -> str:
    """How long ago a timestamp was, in the unit people read."""
    import time

    if ts is None:
        return "-"
    s = max(0.0, time.time() - ts)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    return f"{s / 3600:.0f}h ago"


def size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
