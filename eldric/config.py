"""Configuration: strict msgspec Structs, filled from defaults < file < environment < flags.

A role's Config Struct is the single source of its settings: the JSON keys of its file
section, its ``ELDRIC_*`` environment variables and its command-line flags are all derived
from the Struct's fields (``eldric.fields``), so they cannot drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from eldric import explain
from eldric.errors import ConfigError
# What roles and the CLI use from here, kept importable from eldric.config.
from eldric.fields import (FieldSpec, FloatMs, Ms, Renamed, env_names, env_suffix,  # noqa: F401
                           field_specs, flag_meta, get_path, parse_ms, parse_text,
                           pop_path, renamed_keys, seconds_to_ms, set_path)


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return os.path.join(base, "eldric")


class ProcessConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of the process as a whole (top level of the config file)."""

    log_level: Annotated[Literal["debug", "info", "warning", "error"],
                         flag_meta("log level")] = "info"
    log_format: Annotated[Literal["console", "json"],
                          flag_meta("console lines for people, json lines for machines")] = "console"
    data_dir: Annotated[str, flag_meta("where state that survives a restart is kept")] = ""
    grace_period_ms: Annotated[Ms, flag_meta(
        "on SIGTERM/SIGINT, how long in-flight requests (streams too) may finish, ms")] = 30_000
    ready_timeout_ms: Annotated[Ms, flag_meta(
        "how long the start-up banner waits for every role to be ready (a model loaded, "
        "a healthy worker) before it says what is not, ms")] = 60_000
    # Traces (eldric.trace): off unless an endpoint is given; the SDK is the optional
    # extra eldric[otel], imported only then.
    # A URL with its scheme, as the OTLP exporters need (host:port alone exported nothing).
    processes: Annotated[str, msgspec.Meta(pattern=r"^(auto|[1-9][0-9]*)$"), flag_meta(
        "how many processes serve each edge, router, worker and cloud role on its one port "
        "(SO_REUSEPORT), supervised by the first; auto: one per core this process may use "
        "(the controller always runs as one)",
        expected="a whole number from 1, or auto")] = "1"
    otel_endpoint: Annotated[str, msgspec.Meta(pattern=r"^(https?://[^/\s]+\S*)?$"), flag_meta(
        "send OpenTelemetry traces (one span per request per hop) to this OTLP collector "
        "URL, e.g. http://127.0.0.1:4318 (off when empty; needs eldric[otel])",
        expected="an http:// or https:// URL (or empty: off)")] = ""
    otel_protocol: Annotated[Literal["http/protobuf", "grpc"], flag_meta(
        "OTLP transport: http/protobuf (POST URL/v1/traces when the URL has no path) or "
        "grpc (e.g. http://127.0.0.1:4317)")] = "http/protobuf"
    otel_sample_ratio: Annotated[float, msgspec.Meta(ge=0, le=1), flag_meta(
        "share of new traces recorded, 0..1; a hop given a traceparent follows its "
        "sampled flag (the first hop decides)")] = 1.0


class RegistryConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The model registry a role may serve (eldric.model_registry): file section
    "registry", flags --registry-*."""

    dir: Annotated[str | None, flag_meta(
        "serve a model registry (/api/v1/model-registry) from this directory (the "
        "controller: DATA_DIR/registry when not given)")] = None
    max_upload_bytes: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "largest model file the registry takes, bytes", flag="registry-max-upload-size",
        shared=True)] = 512 * 1024 ** 3
    min_free_bytes: Annotated[int, msgspec.Meta(ge=0), flag_meta(
        "an upload is refused (507) when it would leave less free disk than this, bytes",
        flag="registry-min-free-size", shared=True)] = 1024 ** 3
    idle_timeout_ms: Annotated[Ms, flag_meta(
        "an upload that sends nothing for this long is cut off, ms (it has no total "
        "timeout: --body-timeout and --max-body-size do not apply to it)",
        shared=True)] = 60_000


class RoleConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields every role has; a role's Config subclasses this. The port's default comes
    from the Role (``Role.port``); 0 picks a free port."""

    port: Annotated[int, msgspec.Meta(ge=0, le=65535), flag_meta(
        "port to listen on (0: any free port)")] = 0
    bind_address: Annotated[str, flag_meta("address to bind", flag="bind", shared=True)] = "0.0.0.0"
    advertise_url: Annotated[str | None, flag_meta(
        "URL other roles use to reach this one (default: http://HOSTNAME:PORT)")] = None
    connect_timeout_ms: Annotated[Ms, flag_meta("upstream connect timeout, ms", shared=True)] = 5_000
    first_byte_timeout_ms: Annotated[Ms, flag_meta(
        "upstream time to first byte, ms (a long prompt on a CPU takes minutes)", shared=True)] = 300_000
    idle_timeout_ms: Annotated[Ms, flag_meta(
        "longest silence inside a streamed reply, ms (a stream has no total timeout)",
        shared=True)] = 120_000
    body_timeout_ms: Annotated[Ms, flag_meta(
        "a request body must arrive within this, ms (slow clients are cut off)", shared=True)] = 30_000
    keepalive_timeout_ms: Annotated[Ms, flag_meta(
        "an idle keep-alive connection from a client is closed after this, ms (both lanes)",
        shared=True)] = 75_000
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024), flag_meta(
        "largest request body accepted, bytes (images travel as base64)",
        flag="max-body-size", shared=True)] = 32 * 1024 * 1024
    registry: RegistryConfig = msgspec.field(default_factory=RegistryConfig)


# ---------------------------------------------------------------- loading


def read_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a JSON object at the top level")
    return data


def _convert(data: dict[str, Any], struct: type[msgspec.Struct], where: str,
             source: str) -> Any:
    """Convert one layer (or the merged layers); an error names `source` and the key."""
    try:
        return msgspec.convert(data, struct)
    except msgspec.ValidationError as exc:
        path, what = explain.validation(exc, struct, data)
        raise ConfigError(f"{source}: `{where}{path[1:]}`: {what}") from None


def _rename_in_file(data: dict[str, Any], struct: Any, where: str, source: str,
                    warnings: list[str]) -> None:
    for old, (new, rule) in renamed_keys(struct).items():
        present, value = pop_path(data, old)
        if not present:
            continue
        try:
            converted = rule.convert(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: `{where}.{old}`: must be a positive number of "
                              f"{rule.unit}, got {value!r}") from None
        warnings.append(f"{source}: `{where}.{old}` ({rule.unit}) is deprecated: use "
                        f"`{where}.{new}`; read as `{new}`: {converted}")
        if not get_path(data, new)[0]:  # the new key, if also given, wins
            set_path(data, new, converted)


def _env_layer(struct: Any, specs: list[FieldSpec], role: str | None,
               env: Mapping[str, str], into: dict[str, Any], warnings: list[str]) -> None:
    """Values from ELDRIC_<ROLE>_<FIELD> (wins) or ELDRIC_<FIELD>; nested fields as
    ELDRIC_EDGE_TLS_CERT_FILE. Renamed keys' old variables are read too, with a warning."""
    set_here: set[str] = set()
    for spec in specs:
        for var in env_names(spec.name, role):
            if var in env:
                set_path(into, spec.name, parse_text(spec, env[var], f"environment {var}"))
                set_here.add(spec.name)
                break
    for old, (new, rule) in renamed_keys(struct).items():
        for var, new_var in zip(env_names(old, role), env_names(new, role)):
            if var not in env:
                continue
            try:
                converted = rule.convert(env[var])
            except ValueError:
                raise ConfigError(f"environment {var}: must be a positive number of "
                                  f"{rule.unit}, got {env[var]!r}") from None
            warnings.append(f"environment {var} ({rule.unit}) is deprecated: use {new_var}; "
                            f"read as {new_var}={converted}")
            if new not in set_here:
                set_path(into, new, converted)
            break


def _refs(value: Any) -> set[str]:
    """Variables a config value refers to as "$NAME" (a cloud backend's key)."""
    if isinstance(value, str):
        return {value[1:]} if value.startswith("$") else set()
    if isinstance(value, dict):
        return set().union(*map(_refs, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(_refs, value)) if value else set()
    return set()


def unknown_env(env: Mapping[str, str], roles: Mapping[str, Any],
                used: set[str]) -> list[str]:
    """Warnings for ELDRIC_* variables that set nothing: ELDRIC_<ROLE>_* of a chosen role
    matching none of its fields, and ELDRIC_* matching no field of any chosen role (nor
    another role's prefix). A typo in a file stops eldric; in the environment it would
    otherwise pass unseen."""
    from eldric.client.settings import ENV as CLIENT_ENV  # the clients' own variables
    from eldric.processes import ENV as supervisor_env
    from eldric.registry import available

    process = {s.env_suffix for s in field_specs(ProcessConfig)}
    suffixes = {name: {s.env_suffix for s in field_specs(struct)} |
                {env_suffix(old) for old in renamed_keys(struct)}
                for name, struct in roles.items()}
    every = set().union(process, *suffixes.values())
    prefixes: list[str] = []  # other roles' ELDRIC_<ROLE>_: found when first needed
    out = []
    # ELDRIC_URL, ELDRIC_ROUTER_URL, …: `eldric chat` and the operator commands read them
    # (eldric.client.settings); a shell that runs both should not be warned about them.
    # ELDRIC_PROCESS_*: what a --processes primary hands its children (eldric.processes)
    theirs = set(CLIENT_ENV.values()) | supervisor_env
    for var in sorted(v for v in env if v.startswith("ELDRIC_") and v not in used
                      and v not in theirs):
        role = next((n for n in roles if var.startswith(f"ELDRIC_{n.upper()}_")), None)
        if role is not None:
            suffix = var.removeprefix(f"ELDRIC_{role.upper()}_")
            if suffix in suffixes[role]:
                continue
            if suffix in process:
                hint = f"ELDRIC_{suffix} (process settings take no role)"
            else:
                near = explain.close(suffix, sorted(suffixes[role]))
                hint = near and f"ELDRIC_{role.upper()}_{near}"
            what = f"{var} is not a {role} setting"
        else:
            suffix = var.removeprefix("ELDRIC_")
            if suffix in every:
                continue
            prefixes = prefixes or [f"ELDRIC_{n.upper()}_" for n in {*available(), *roles}]
            if any(var.startswith(p) for p in prefixes):
                continue
            near = explain.close(suffix, sorted(every))
            hint = near and f"ELDRIC_{near}"
            what = f"{var} matches no setting of {', '.join(roles) or 'the process'}"
        out.append(f"environment {what}" + (f" (did you mean {hint}?)" if hint else "")
                   + "; ignored")
    return out


@dataclass
class Loaded:
    process: ProcessConfig
    roles: dict[str, Any]  # role name -> its Config instance
    warnings: list[str]  # deprecated keys, variables that set nothing: for stderr


def load(roles: Mapping[str, tuple[type[msgspec.Struct], Mapping[str, Any]]],
         config_file: str | None, env: Mapping[str, str],
         flag_values: Mapping[str, tuple[FieldSpec, Any]]) -> Loaded:
    """Build the process config and one config per chosen role.

    ``roles`` maps a role name to (its Config Struct, the defaults layer below the file:
    ``Role.defaults()``).
    ``flag_values`` maps "role.field" (or "process.field") to the value given on the
    command line, already converted by ``parse_text``.
    """
    data = read_file(config_file)
    file = f"config file {config_file}"
    sectioned = bool(set(roles).intersection(data)) or len(roles) > 1
    process_data, sections = _split_file(data, set(roles), sectioned, file)
    warnings: list[str] = []

    # Process settings.
    _convert(process_data, ProcessConfig, "$", file)
    merged = dict(process_data)
    _env_layer(ProcessConfig, field_specs(ProcessConfig), None, env, merged, warnings)
    _flag_layer(flag_values, "process", merged)
    process = _convert(merged, ProcessConfig, "$", "config")
    if not process.data_dir:
        process.data_dir = default_data_dir()

    out: dict[str, Any] = {}
    used: set[str] = set()
    for name, (struct, base) in roles.items():
        where = f"$.{name}" if sectioned else "$"
        section = sections[name]
        _rename_in_file(section, struct, where, file, warnings)
        _convert(section, struct, where, file)  # file errors are reported against the file
        merged = dict(base)
        for key, value in section.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                value = {**merged[key], **value}  # a file section deepens the defaults
            merged[key] = value
        _env_layer(struct, field_specs(struct), name, env, merged, warnings)
        _flag_layer(flag_values, name, merged)
        used |= _refs(merged)
        out[name] = _convert(merged, struct, where, "config")
    warnings += unknown_env(env, {n: s for n, (s, _) in roles.items()}, used)
    return Loaded(process=process, roles=out, warnings=warnings)


def _split_file(data: dict[str, Any], names: set[str], sectioned: bool,
                file: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The file's process settings, and each chosen role's own part of it (its section,
    or the whole flat file for a single role)."""
    process_fields = {s.name for s in field_specs(ProcessConfig)}
    process_data = {k: v for k, v in data.items() if k in process_fields}
    if not sectioned:
        (only,) = names
        return process_data, {only: {k: v for k, v in data.items() if k not in process_fields}}
    from eldric.registry import available  # known role names may have sections
    known = set(available()) | names
    unknown = set(data) - known - process_fields
    if unknown:
        key = sorted(unknown)[0]
        hint = explain.close(key, sorted(known | process_fields))
        raise ConfigError(
            f"{file}: unknown key `{key}` at the top level "
            + (f"(did you mean `{hint}`?) " if hint else "")
            + f"(expected a role section {sorted(names)} or one of {sorted(process_fields)})")
    for name in names:
        if name in data and not isinstance(data[name], dict):
            raise ConfigError(f"{file}: `{name}` must be an object")
    return process_data, {name: dict(data.get(name, {})) for name in names}


def _flag_layer(flag_values: Mapping[str, tuple[FieldSpec, Any]], owner: str,
                into: dict[str, Any]) -> None:
    """The command line's values for `owner` ("process" or a role name), on top."""
    for key, (_spec, value) in flag_values.items():
        if key.startswith(f"{owner}."):
            set_path(into, key.split(".", 1)[1], value)
