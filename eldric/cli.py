"""The `eldric` command: parse, load config, run. It knows no role by name.

The flags a role accepts are derived from its Config Struct (eldric.config.field_specs),
so the command is built in two steps: find --role in argv, then build a click command with
the common options plus those of the chosen roles.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click
import msgspec

from eldric import __version__
from eldric.client import NAMES as CLIENT_COMMANDS
from eldric.config import (FieldSpec, Loaded, ProcessConfig, default_data_dir, env_names,
                           field_specs, get_path, load, parse_text)
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


_METAVARS = {"int": "N", "float": "NUMBER", "list": "A,B,…", "json": "JSON", "str": "TEXT",
             "ms": "MS"}


def _shown_default(value: Any) -> str | None:
    """A default as --help shows it; None when there is nothing worth saying."""
    if value is None or value == "" or value == [] or value == {} or value is False:
        return None
    if isinstance(value, bool):
        return "true"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, (list, dict)):
        return msgspec.json.encode(value).decode()
    return str(value)


def _help(spec: FieldSpec, defaults: dict[str, Any], env: Sequence[str]) -> str:
    """The field's help, then its default (per role, if they differ) and the ELDRIC_*
    variables that set it."""
    shown = {name: v for name, v in ((n, _shown_default(d)) for n, d in defaults.items())
             if v is not None}
    if len(set(shown.values())) == 1 and len(shown) == len(defaults):
        default = next(iter(shown.values()))
    else:
        default = ", ".join(f"{name} {value}" for name, value in shown.items())
    facts = ([f"default: {default}"] if default else []) + [f"env: {', '.join(env)}"]
    return f"{spec.help}  [{'; '.join(facts)}]"


def _role_help(roles: Sequence[tuple[Role, FieldSpec]], quick: bool) -> str:
    """Help for a flag one or more chosen roles declare; a role's own layer below the
    file (its port, the quick start's settings) is its default."""
    defaults = {}
    for role, spec in roles:
        found, value = get_path(role.defaults(quick), spec.name)
        defaults[role.name] = value if found else spec.default
    spec = roles[0][1]
    env = (env_names(spec.name, roles[0][0].name) if len(roles) == 1 else
           [f"ELDRIC_<ROLE>_{spec.env_suffix}", f"ELDRIC_{spec.env_suffix}"])
    return _help(spec, defaults, env)


def _option(spec: FieldSpec, text: str) -> click.Option:
    name = f"--{spec.flag}"
    dest = "opt_" + spec.flag.replace("-", "_")  # type: ignore[union-attr]
    if spec.kind == "bool":
        if spec.switch:
            return click.Option([name, dest], is_flag=True, default=None, help=text)
        return click.Option([f"{name}/--no-{spec.flag}", dest], default=None, help=text)
    if spec.multiple:
        return click.Option([name, dest], multiple=True, default=None,
                            help=f"{text} (repeatable)", metavar="TEXT")
    typ: Any = click.Choice(spec.choices) if spec.choices else None
    if spec.choices:
        metavar = None  # click shows the choices
    elif spec.parse is not None and spec.kind != "ms":
        metavar = "A,B,…"
    else:
        metavar = _METAVARS.get(spec.kind)
    return click.Option([name, dest], type=typ, default=None, help=text, metavar=metavar)


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
            "`eldric --role NAME --help` shows that role's options. A duration (MS) is "
            "milliseconds, or with a unit: 500ms, 5s, 1.5s, 2m, 1h.\n\n"
            # the clients are not role flags, so click would not list them: say they exist
            "The client and operator commands: "
            + ", ".join(f"`eldric {name}`" for name in CLIENT_COMMANDS)
            + " (`eldric COMMAND --help`).")


def build_command(roles: Sequence[Role], role_spec: str | None) -> click.Command:
    table = _flag_table(roles)
    params: list[click.Parameter] = [
        click.Option(["--role", "role"], required=True, metavar="ROLE[,ROLE…]|all",
                     help="role(s) to run in this process"),
        click.Option(["--config", "config_file"], type=click.Path(dir_okay=False),
                     help="JSON config file (one section per role when several run)"),
    ]
    quick = role_spec is not None and role_spec.strip() == "all"
    by_name = {r.name: r for r in roles}
    # Process settings have no role prefix; --data-dir's "" default means this directory.
    params += [_option(spec, _help(spec, {"": default_data_dir() if spec.name == "data_dir"
                                          else spec.default}, env_names(spec.name, None)))
               for spec in _PROCESS_FLAGS.values()]
    params += [_option(entries[0][1], _role_help([(by_name[n], s) for n, s in entries], quick))
               for flag, entries in table.items() if flag not in _PROCESS_FLAGS]

    def callback(role: str, config_file: str | None, **opts: Any) -> None:
        try:
            loaded = load_config(roles, {k.removeprefix("opt_"): v for k, v in opts.items()},
                                 os.environ, config_file, quick=quick)
        except ConfigError as exc:
            _fail(str(exc))
        for warning in loaded.warnings:
            click.echo(f"eldric: warning: {warning}", err=True)
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


def load_config(roles: Sequence[Role], flags: Mapping[str, Any], env: Mapping[str, str],
                config_file: str | None = None, *, quick: bool = False) -> Loaded:
    """The configuration the chosen roles run with, exactly as `eldric` builds it: their
    role defaults (with the quick start's settings when `quick`), the config file, the
    environment, then `flags`, keyed by flag name (`backend_url` or `backend-url` is
    --backend-url; a value is the flag's text, or a list for a repeatable flag; None or ()
    is a flag not given). Raises ConfigError naming the flag, variable or key at fault."""
    values = _flag_values(roles, _flag_table(roles), flags)
    return load({r.name: (r.config, r.defaults(quick)) for r in roles}, config_file, env, values)


def _flag_values(roles: Sequence[Role], table: dict[str, list[tuple[str, FieldSpec]]],
                 flags: Mapping[str, Any]) -> dict[str, tuple[FieldSpec, Any]]:
    out: dict[str, tuple[FieldSpec, Any]] = {}
    for key, value in flags.items():
        if value is None or value == ():  # not given (a repeatable flag gives ())
            continue
        flag = key.replace("_", "-")
        if flag in _PROCESS_FLAGS:
            spec = _PROCESS_FLAGS[flag]
            out[f"process.{spec.name}"] = (spec, _convert(spec, value))
            continue
        entries = table.get(flag)
        if entries is None:
            raise ConfigError(f"--{flag}: no such option for role(s) "
                              f"{', '.join(r.name for r in roles)}")
        if len(entries) > 1 and not all(spec.shared for _, spec in entries):
            by_name = {r.name: r for r in roles}
            names = ", ".join(n for n, _ in entries)
            # What works for each role: its own variable, unless the role says otherwise
            # (the edge in plain HTTP listens on http_port, not port).
            ways = [by_name[n].env_hints.get(spec.name) or env_names(spec.name, n)[0]
                    for n, spec in entries]
            raise ConfigError(
                f"--{flag} is ambiguous: roles {names} all take it; set it per role: "
                f"{', '.join(ways)}, or in each role's section of the config file")
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
    if args and args[0] in CLIENT_COMMANDS:  # eldric chat, eldric workers, ... (eldric.client)
        from eldric.client import main as client_main

        client_main(args)
        return
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
