"""Settings derived from a Config Struct's fields: flags, ELDRIC_* variables, their text.

Field metadata (``msgspec.Meta(extra=...)``, see ``flag_meta``) shapes the derived flag:
- ``flag``: the flag's name without dashes (default: the field name, ``_ms`` dropped,
  ``_`` → ``-``); ``None`` means no flag (file and environment only);
- ``shared``: the flag may be given once for several roles in one process (timeouts,
  bind address); an unshared flag that two chosen roles declare is refused as ambiguous;
- ``parse``: a callable turning the flag/env string into the field's value (for lists of
  objects such as ``--workers URL,URL``).

Durations (fields typed ``Ms``) take a unit on the command line and in the environment
(``5s``, ``2m``); files keep plain milliseconds. A Struct may list keys it renamed
(``renamed``, a ClassVar of ``Renamed``) so old files and variables keep working.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from eldric import explain
from eldric.errors import ConfigError

# Milliseconds: a flag or variable may say 500, 500ms, 5s, 1.5s, 2m or 1h (parse_ms).
Ms = Annotated[int, msgspec.Meta(ge=1, le=86_400_000, extra={"duration": "ms"})]
FloatMs = Annotated[float, msgspec.Meta(ge=0, le=86_400_000, extra={"duration": "ms"})]

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h)?\s*", re.I)
_MS_PER = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}


def parse_ms(text: str) -> int | float:
    """"500" (ms), "500ms", "5s", "1.5s", "2m", "1h" -> milliseconds (an int when whole)."""
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ValueError(text)
    ms = float(m[1]) * _MS_PER[(m[2] or "ms").lower()]
    return int(ms) if ms.is_integer() else ms


@dataclass(frozen=True)
class Renamed:
    """A key a Struct renamed: ``renamed = {"window_seconds": Renamed("window_ms",
    seconds_to_ms, "seconds")}``. The old key (file) or variable (env) is read, converted,
    and reported as deprecated."""

    new: str
    convert: Callable[[Any], Any]
    unit: str  # what the old key was in, for the warning


def seconds_to_ms(value: Any) -> int:
    seconds = float(value)  # a file's number, or a variable's text
    if isinstance(value, bool) or not 0 < seconds < 1e12:  # nan and inf too
        raise ValueError(value)
    return round(seconds * 1000)


def flag_meta(description: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, extra=extra)


# ---------------------------------------------------------------- deriving flags from fields


@dataclass(frozen=True)
class FieldSpec:
    name: str                 # field name in the Struct and the file; "tls.cert_file" nested
    flag: str | None          # flag without leading dashes
    help: str
    kind: str                 # bool | int | float | ms | str | list | json
    shared: bool
    parse: Callable[[str], Any] | None
    choices: tuple[str, ...] | None
    multiple: bool = False    # a repeatable flag (--api-key A --api-key B) for a list
    switch: bool = False      # a bool flag that only turns on (--no-tls), no --no-… twin
    type: Any = Any           # the field's annotation, bounds included (to check a value)
    default: Any = None       # the Struct's default (the role's port comes from Role.port)

    @property
    def env_suffix(self) -> str:
        """ELDRIC_<ROLE>_ + this (or ELDRIC_ + this) names the field's variable."""
        return env_suffix(self.name)


def env_suffix(name: str) -> str:
    return name.upper().replace(".", "_")  # tls.cert_file -> TLS_CERT_FILE


def env_names(name: str, role: str | None) -> list[str]:
    """The variables that set a (dotted) field, the role's own first (it wins)."""
    generic = f"ELDRIC_{env_suffix(name)}"
    return [f"ELDRIC_{role.upper()}_{env_suffix(name)}", generic] if role else [generic]


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


def _struct_info(struct: Any) -> msgspec.inspect.StructType:
    return struct if isinstance(struct, msgspec.inspect.StructType) else _type_info(struct)


# Once per Config class and process: msgspec.inspect and get_type_hints evaluate every
# annotation anew on each call, most of a config load's time (every start, every
# `eldric … --help`); a class's fields do not change while the process runs.
@functools.cache
def _type_info(cls: type) -> msgspec.inspect.StructType:
    return msgspec.inspect.type_info(cls)  # type: ignore[return-value]


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _default(f: msgspec.inspect.Field) -> Any:
    if f.default_factory is not msgspec.NODEFAULT:
        return f.default_factory()
    return None if f.default is msgspec.NODEFAULT else f.default


def field_specs(struct: type[msgspec.Struct], prefix: str = "") -> list[FieldSpec]:
    """One spec per field; a field holding a Struct (``tls``, ``rate_limits``) contributes
    its own fields, named with a dot (``tls.cert_file``)."""
    specs = []
    info = _struct_info(struct)
    hints = _type_hints(info.cls)
    for f in info.fields:
        desc, extra = _meta(f.type)
        base = _unwrap(f.type)
        if isinstance(base, msgspec.inspect.StructType):
            specs.extend(field_specs(base, f"{prefix}{f.name}."))  # type: ignore[arg-type]
            continue
        choices = None
        if extra.get("duration") == "ms":
            kind = "ms"
        elif isinstance(base, msgspec.inspect.BoolType):
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
                               switch=bool(extra.get("switch")), type=hints[f.name],
                               default=_default(f)))
    return specs


def renamed_keys(struct: Any, prefix: str = "") -> dict[str, tuple[str, Renamed]]:
    """Old dotted key -> (new dotted key, rule), from the ``renamed`` of nested Structs."""
    info = _struct_info(struct)
    out = {f"{prefix}{old}": (f"{prefix}{rule.new}", rule)
           for old, rule in getattr(info.cls, "renamed", {}).items()}
    for f in info.fields:
        base = _unwrap(f.type)
        if isinstance(base, msgspec.inspect.StructType):
            out.update(renamed_keys(base, f"{prefix}{f.name}."))
    return out


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


def pop_path(data: dict[str, Any], name: str, keep: bool = False) -> tuple[bool, Any]:
    """(found, value) at a dotted name, removed unless `keep` (nested dicts are copied
    before a removal, like set_path)."""
    head, _, rest = name.partition(".")
    if not rest:
        if head not in data:
            return False, None
        return True, data[head] if keep else data.pop(head)
    inner = data.get(head)
    if not isinstance(inner, dict):
        return False, None
    if not keep:
        inner = data[head] = dict(inner)
    return pop_path(inner, rest, keep)


def get_path(data: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """(found, value) at a dotted name ("tls.cert_file") of nested dicts."""
    return pop_path(data, name, keep=True)  # type: ignore[arg-type]


def _bad(source: str, spec: FieldSpec, text: str) -> ConfigError:
    want = explain.expected(msgspec.inspect.type_info(spec.type)) or f"a {spec.kind} value"
    return ConfigError(f"{source}: must be {want}, got {explain.shown(spec.name, text)}")


def parse_text(spec: FieldSpec, text: str, source: str) -> Any:
    """Turn a flag/env string into a value of the field, checked against the field's type
    and bounds, so a bad value is reported against its flag or variable."""
    try:
        if spec.kind == "json" and text.lstrip()[:1] in ("[", "{"):
            value = msgspec.json.decode(text)  # JSON wins over a field's short form
        elif spec.parse is not None:
            value = spec.parse(text)
        elif spec.kind == "bool":
            low = text.strip().lower()
            if low not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(text)
            value = low in ("1", "true", "yes", "on")
        elif spec.kind == "ms":
            value = parse_ms(text)
        elif spec.kind == "int":
            value = int(text)
        elif spec.kind == "float":
            value = float(text)
        elif spec.kind == "list":
            value = (msgspec.json.decode(text) if text.lstrip().startswith("[")
                     else [x.strip() for x in text.split(",") if x.strip()])
        elif spec.kind == "json":
            value = msgspec.json.decode(text)
        else:
            value = text
    except msgspec.DecodeError:
        raise ConfigError(f"{source}: invalid JSON (got {explain.shown(spec.name, text)})") \
            from None
    except ValueError as exc:
        if spec.parse is not None and str(exc):  # the field's own parser says what is wrong
            raise ConfigError(f"{source}: {exc}") from None
        raise _bad(source, spec, text) from None
    try:
        msgspec.convert(value, spec.type)  # checked here; the layers keep plain values
    except msgspec.ValidationError as exc:
        path, what = explain.validation(exc, spec.type, value)
        if path == "$":
            raise _bad(source, spec, text) from None
        raise ConfigError(f"{source}: `{path}`: {what}") from None
    return value
