"""Configuration: strict msgspec Structs, filled from defaults < file < environment < flags.

A role's Config Struct is the single source of its settings: the JSON keys of its file
section, its ``ELDRIC_*`` environment variables and its command-line flags are all derived
from the Struct's fields (see ``field_specs``), so they cannot drift apart.

Field metadata (``msgspec.Meta(extra=...)``) shapes the derived flag:
- ``flag``: the flag's name without dashes (default: the field name, ``_ms`` dropped,
  ``_`` → ``-``); ``None`` means no flag (file and environment only);
- ``shared``: the flag may be given once for several roles in one process (timeouts,
  bind address); an unshared flag that two chosen roles declare is refused as ambiguous;
- ``parse``: a callable turning the flag/env string into the field's value (for lists of
  objects such as ``--workers URL,URL``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from eldric.errors import ConfigError

Ms = Annotated[int, msgspec.Meta(ge=1, le=86_400_000)]


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return os.path.join(base, "eldric")


def flag_meta(description: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, extra=extra)


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


# ---------------------------------------------------------------- deriving flags from fields


@dataclass(frozen=True)
class FieldSpec:
    name: str                 # field name in the Struct and the file; "tls.cert_file" nested
    flag: str | None          # flag without leading dashes
    help: str
    kind: str                 # bool | int | float | str | list | json
    shared: bool
    parse: Callable[[str], Any] | None
    choices: tuple[str, ...] | None
    multiple: bool = False    # a repeatable flag (--api-key A --api-key B) for a list
    switch: bool = False      # a bool flag that only turns on (--no-tls), no --no-… twin


def _unwrap(t: Any) -> Any:
    """Strip Metadata wrappers and Optional from a msgspec.inspect type."""
    while True:
        if isinstance(t, msgspec.inspect.Metadata):
            t = t.type
        elif isinstance(t, msgspec.inspect.UnionType):
            rest = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
            if len(rest) != 1:
                return t
            t = rest[0]
        else:
            return t


def _meta(t: Any) -> tuple[str, dict[str, Any]]:
    desc, extra = "", {}
    while isinstance(t, (msgspec.inspect.Metadata, msgspec.inspect.UnionType)):
        if isinstance(t, msgspec.inspect.Metadata):
            desc = (t.extra_json_schema or {}).get("description", desc)
            extra = {**(t.extra or {}), **extra}
            t = t.type
        else:
            rest = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
            if len(rest) != 1:
                break
            t = rest[0]
    return desc, extra


def field_specs(struct: type[msgspec.Struct], prefix: str = "") -> list[FieldSpec]:
    """One spec per field; a field holding a Struct (``tls``, ``rate_limits``) contributes
    its own fields, named with a dot (``tls.cert_file``)."""
    specs = []
    info = struct if isinstance(struct, msgspec.inspect.StructType) else \
        msgspec.inspect.type_info(struct)
    for f in info.fields:  # type: ignore[attr-defined]
        desc, extra = _meta(f.type)
        base = _unwrap(f.type)
        if isinstance(base, msgspec.inspect.StructType):
            specs.extend(field_specs(base, f"{prefix}{f.name}."))  # type: ignore[arg-type]
            continue
        choices = None
        if isinstance(base, msgspec.inspect.BoolType):
            kind = "bool"
        elif isinstance(base, msgspec.inspect.IntType):
            kind = "int"
        elif isinstance(base, msgspec.inspect.FloatType):
            kind = "float"
        elif isinstance(base, msgspec.inspect.StrType):
            kind = "str"
        elif isinstance(base, msgspec.inspect.LiteralType):
            kind, choices = "str", tuple(str(v) for v in base.values)
        elif (isinstance(base, msgspec.inspect.ListType)
              and isinstance(_unwrap(base.item_type), msgspec.inspect.StrType)):
            kind = "list"
        else:
            kind = "json"
        default_flag = f"{prefix}{f.name}".removesuffix("_ms").replace("_", "-").replace(".", "-")
        flag = extra.get("flag", default_flag)
        if kind == "json" and "parse" not in extra and "flag" not in extra:
            flag = None  # objects are set in the file (or as JSON in the environment)
        specs.append(FieldSpec(name=f"{prefix}{f.name}", flag=flag, help=desc, kind=kind,
                               shared=bool(extra.get("shared")), parse=extra.get("parse"),
                               choices=choices, multiple=bool(extra.get("multiple")),
                               switch=bool(extra.get("switch"))))
    return specs


def set_path(data: dict[str, Any], name: str, value: Any) -> None:
    """data["tls"]["cert_file"] = value for name "tls.cert_file" (copying nested dicts,
    so a layer never changes the one below it)."""
    head, _, rest = name.partition(".")
    if not rest:
        data[head] = value
        return
    inner = dict(data.get(head) or {})
    set_path(inner, rest, value)
    data[head] = inner


def parse_text(spec: FieldSpec, text: str, source: str) -> Any:
    """Turn a flag/env string into a value of the field's JSON type."""
    try:
        if spec.kind == "json" and text.lstrip()[:1] in ("[", "{"):
            return msgspec.json.decode(text)  # JSON wins over a field's short form
        if spec.parse is not None:
            return spec.parse(text)
        if spec.kind == "bool":
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if spec.kind == "int":
            return int(text)
        if spec.kind == "float":
            return float(text)
        if spec.kind == "list":
            if text.lstrip().startswith("["):
                return msgspec.json.decode(text)
            return [x.strip() for x in text.split(",") if x.strip()]
        if spec.kind == "json":
            return msgspec.json.decode(text)
        return text
    except (ValueError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{source}: {exc} (got {text!r})") from None


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


def _convert(data: dict[str, Any], struct: type[msgspec.Struct], where: str) -> Any:
    try:
        return msgspec.convert(data, struct)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        if msg.startswith("Invalid enum value") and "`$." in msg:
            # Say what would have been accepted.
            field = msg.rsplit("`$.", 1)[1].rstrip("`").split(".")[-1]
            for spec in field_specs(struct):
                if spec.name == field and spec.choices:
                    msg = msg.replace(" - at ", f" (expected one of: {', '.join(spec.choices)}) - at ")
        # msgspec paths start at "$"; show them from the section they came from.
        msg = msg.replace("`$.", f"`{where}.").replace("- at `$`", f"- at `{where}`")
        if " - at " not in msg:
            msg = f"{msg} - at `{where}`"
        raise ConfigError(f"config: {msg}") from None


def _env_layer(specs: list[FieldSpec], prefixes: list[str], env: Mapping[str, str],
               into: dict[str, Any]) -> None:
    """Values from ELDRIC_<ROLE>_<FIELD> (wins) or ELDRIC_<FIELD>; nested fields as
    ELDRIC_EDGE_TLS_CERT_FILE."""
    for spec in specs:
        for prefix in prefixes:
            var = f"{prefix}{spec.name.upper().replace('.', '_')}"
            if var in env:
                set_path(into, spec.name, parse_text(spec, env[var], f"environment {var}"))
                break


@dataclass
class Loaded:
    process: ProcessConfig
    roles: dict[str, Any]  # role name -> its Config instance


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
    names = set(roles)
    sectioned = bool(names.intersection(data)) or len(roles) > 1
    process_fields = {s.name for s in field_specs(ProcessConfig)}

    if sectioned:
        from eldric.registry import available  # known role names may have sections
        known = set(available()) | names
        unknown = set(data) - known - process_fields
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(
                f"config file {config_file}: unknown key `{key}` at the top level "
                f"(expected a role section {sorted(names)} or one of {sorted(process_fields)})")
        for name in names:
            if name in data and not isinstance(data[name], dict):
                raise ConfigError(f"config file {config_file}: `{name}` must be an object")
        process_data = {k: v for k, v in data.items() if k in process_fields}
        sections = {name: data.get(name, {}) for name in names}
    else:
        (only,) = names
        process_data = {k: v for k, v in data.items() if k in process_fields}
        sections = {only: {k: v for k, v in data.items() if k not in process_fields}}

    # Process settings.
    _convert(process_data, ProcessConfig, "$")
    merged = dict(process_data)
    _env_layer(field_specs(ProcessConfig), ["ELDRIC_"], env, merged)
    for key, (_spec, value) in flag_values.items():
        if key.startswith("process."):
            set_path(merged, key.split(".", 1)[1], value)
    process = _convert(merged, ProcessConfig, "$")
    if not process.data_dir:
        process.data_dir = default_data_dir()

    out: dict[str, Any] = {}
    for name, (struct, base) in roles.items():
        where = f"$.{name}" if sectioned else "$"
        section = sections[name]
        _convert(section, struct, where)  # file errors are reported against the file
        merged = dict(base)
        for key, value in section.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                value = {**merged[key], **value}  # a file section deepens the defaults
            merged[key] = value
        _env_layer(field_specs(struct), [f"ELDRIC_{name.upper()}_", "ELDRIC_"], env, merged)
        for key, (_spec, value) in flag_values.items():
            if key.startswith(f"{name}."):
                set_path(merged, key.split(".", 1)[1], value)
        out[name] = _convert(merged, struct, where)
    return Loaded(process=process, roles=out)
