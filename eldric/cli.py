"""The `eldric` command: parse, load config, run. It knows no role by name.

The flags a role accepts are derived from its Config Struct (eldric.config.field_specs),
so the command is built in two steps: find --role in argv, then build a click command with
the common options plus those of the chosen roles.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from eldric import __version__
from eldric.config import FieldSpec, ProcessConfig, field_specs, load, parse_text
from eldric.errors import ConfigError
from eldric.registry import Role, available, resolve

if TYPE_CHECKING:
    from eldric.readiness import Readiness

_PROCESS_FLAGS = {s.flag: s for s in field_specs(ProcessConfig) if s.flag}


def _role_arg(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--role" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--role="):
            return arg.split("=", 1)[1]
    return None


_METAVARS = {"int": "N", "float": "NUMBER", "list": "A,B,…", "json": "JSON", "str": "TEXT"}


def _option(spec: FieldSpec) -> click.Option:
    name = f"--{spec.flag}"
    dest = "opt_" + spec.flag.replace("-", "_")  # type: ignore[union-attr]
    if spec.kind == "bool":
        if spec.switch:
            return click.Option([name, dest], is_flag=True, default=None, help=spec.help)
        return click.Option([f"{name}/--no-{spec.flag}", dest], default=None, help=spec.help)
    if spec.multiple:
        return click.Option([name, dest], multiple=True, default=None,
                            help=f"{spec.help} (repeatable)", metavar="TEXT")
    typ: Any = click.Choice(spec.choices) if spec.choices else None
    if spec.choices:
        metavar = None  # click shows the choices
    elif spec.parse is not None:
        metavar = "A,B,…"
    else:
        metavar = "MS" if spec.name.endswith("_ms") else _METAVARS.get(spec.kind)
    return click.Option([name, dest], type=typ, default=None, help=spec.help, metavar=metavar)


def _flag_table(roles: Sequence[Role]) -> dict[str, list[tuple[str, FieldSpec]]]:
    """flag -> [(role name, spec)] for every flag the chosen roles declare."""
    table: dict[str, list[tuple[str, FieldSpec]]] = {}
    for role in roles:
        for spec in field_specs(role.config):
            if spec.flag:
                table.setdefault(spec.flag, []).append((role.name, spec))
    return table


def _roles_epilog() -> str:
    names = sorted(available())
    return ("Roles found: " + ", ".join(names) + ", or `all` (the one-host quick start). "
            "`eldric --role NAME --help` shows that role's options.")


def build_command(roles: Sequence[Role], role_spec: str | None) -> click.Command:
    table = _flag_table(roles)
    params: list[click.Parameter] = [
        click.Option(["--role", "role"], required=True, metavar="ROLE[,ROLE…]|all",
                     help="role(s) to run in this process"),
        click.Option(["--config", "config_file"], type=click.Path(dir_okay=False),
                     help="JSON config file (one section per role when several run)"),
    ]
    params += [_option(spec) for spec in _PROCESS_FLAGS.values()]
    params += [_option(entries[0][1]) for flag, entries in table.items()
               if flag not in _PROCESS_FLAGS]

    def callback(role: str, config_file: str | None, **opts: Any) -> None:
        try:
            flag_values = _flag_values(roles, table, opts)
            quick = role_spec is not None and role_spec.strip() == "all"
            loaded = load({r.name: (r.config, r.defaults(quick)) for r in roles},
                          config_file, os.environ, flag_values)
        except ConfigError as exc:
            _fail(str(exc))
        from eldric import log
        from eldric.app import run

        log.setup(loaded.process.log_level, loaded.process.log_format)
        links = {r.name: r.links for r in roles}
        notes = {r.name: r.summary(loaded.roles[r.name]) for r in roles if r.summary}
        run(roles, loaded.roles, loaded.process,
            on_readiness=lambda state: _banner(state, links, notes))

    return click.Command("eldric", params=params, callback=callback,
                         help="eldric: one OpenAI-compatible endpoint in front of your "
                              "LLM servers and cloud providers.",
                         epilog=_roles_epilog(),
                         context_settings={"max_content_width": 100,
                                           "help_option_names": ["-h", "--help"]})


def _flag_values(roles: Sequence[Role], table: dict[str, list[tuple[str, FieldSpec]]],
                 opts: dict[str, Any]) -> dict[str, tuple[FieldSpec, Any]]:
    out: dict[str, tuple[FieldSpec, Any]] = {}
    for key, value in opts.items():
        if value is None or value == ():  # not given (a repeatable flag gives ())
            continue
        flag = key.removeprefix("opt_").replace("_", "-")
        if flag in _PROCESS_FLAGS:
            spec = _PROCESS_FLAGS[flag]
            out[f"process.{spec.name}"] = (spec, _convert(spec, value))
            continue
        entries = table[flag]
        if len(entries) > 1 and not all(spec.shared for _, spec in entries):
            names = ", ".join(n for n, _ in entries)
            raise ConfigError(
                f"--{flag} is ambiguous: roles {names} all take it; set it per role in the "
                f"config file section or as ELDRIC_<ROLE>_{entries[0][1].name.upper()}")
        for name, spec in entries:
            out[f"{name}.{spec.name}"] = (spec, _convert(spec, value))
    return out


def _convert(spec: FieldSpec, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if spec.multiple:
        values = value if isinstance(value, (list, tuple)) else [value]
        return [str(v) for v in values]
    return parse_text(spec, str(value), f"--{spec.flag}")


def _banner(state: Readiness, links: dict[str, tuple[tuple[str, str], ...]],
            notes: dict[str, str]) -> None:
    """For the person who started it: "ready" (where each role listens, the pages to open)
    only once a request would succeed; until then, what it is waiting for."""
    urls = state.urls
    width = max(map(len, urls))
    where = [f"  {name:<{width}}  {url}" + (f"  ({notes[name]})" if name in notes else "")
             for name, url in urls.items()]
    waits = [f"  {name:<{width}}  {why}" for name, why in state.waiting.items()]
    if state.timed_out and state.waiting:
        lines = [f"eldric {__version__} not ready after {state.elapsed:.0f} s; still waiting for:",
                 *waits, "listening (requests may fail until then):", *where]
    elif state.waiting:
        lines = [f"eldric {__version__} listening, not ready yet; waiting for:", *waits]
    else:
        lines = [f"eldric {__version__} ready:", *where]
        lines += [f"  open {label}: {urls[name]}{path}"
                  for name in urls for label, path in links.get(name, ())]
    click.echo("\n".join(lines), err=True)


def _fail(message: str) -> None:
    """A start-up error: one line, exit 2, no traceback."""
    click.echo(f"eldric: {message}", err=True)
    sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--version" in args:
        click.echo(f"eldric {__version__}")
        return
    role_spec = _role_arg(args)
    roles: list[Role] = []
    if role_spec is not None:
        try:
            roles = resolve(role_spec)
        except ConfigError as exc:
            _fail(str(exc))
    cmd = build_command(roles, role_spec)
    cmd.main(args=args, prog_name="eldric")
