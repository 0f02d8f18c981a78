"""Say in eldric's words what a setting must be, for one-line start-up errors.

msgspec reports a validation error as "<what> - at `$.path`". The path is kept (it names
the key); the "what" is rephrased from the field's own type and bounds ("must be an
integer from 0 to 65535, got 99999"), so the message is eldric's and stays the same
whichever msgspec version is installed. Errors this module cannot rephrase (a role's own
check) keep msgspec's text.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import msgspec

_AT = re.compile(r"^(?P<what>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_SECRET = re.compile(r"(^|_)(api_?)?keys?$|password|secret|token$", re.I)

DURATION_EXAMPLES = "500, 500ms, 5s, 1.5s, 2m, 1h"


def format_ms(ms: float) -> str:
    """A millisecond count in the unit a person would say: 500 ms, 1.5 s, 2 min, 24 h."""
    for unit, size in (("h", 3_600_000), ("min", 60_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size:g} {unit}"
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def split(message: str) -> tuple[str, str]:
    """msgspec's message -> (what, path); the path is "$" when it gives none."""
    m = _AT.match(message)
    assert m is not None  # the pattern matches any text
    return m["what"], m["path"] or "$"


def _strip(t: Any) -> tuple[Any, dict[str, Any], bool]:
    """(the type under Metadata wrappers and Optional, their merged extra, nullable)."""
    extra: dict[str, Any] = {}
    nullable = False
    while True:
        if isinstance(t, msgspec.inspect.Metadata):
            extra = {**(t.extra or {}), **extra}
            t = t.type
        elif isinstance(t, msgspec.inspect.UnionType):
            rest = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
            if len(rest) != 1:
                return t, extra, nullable
            nullable = nullable or len(rest) < len(t.types)
            t = rest[0]
        else:
            return t, extra, nullable


def _bounds(t: Any, show: Any = str) -> str:
    lo = [(">=", t.ge), (">", t.gt)]
    hi = [("<=", t.le), ("<", t.lt)]
    low = next(((op, v) for op, v in lo if v is not None), None)
    high = next(((op, v) for op, v in hi if v is not None), None)
    if low and high and low[0] == ">=" and high[0] == "<=":
        return f" from {show(low[1])} to {show(high[1])}"
    return "".join(f" {op} {show(v)}" for op, v in (b for b in (low, high) if b))


def expected(t: Any) -> str | None:
    """What a value of this (msgspec.inspect) type must be, or None if it is not simple."""
    t, extra, nullable = _strip(t)
    text: str | None
    if extra.get("duration") == "ms" and isinstance(t, (msgspec.inspect.IntType,
                                                        msgspec.inspect.FloatType)):
        text = f"a duration{_bounds(t, format_ms)} (e.g. {DURATION_EXAMPLES})"
    elif isinstance(t, msgspec.inspect.BoolType):
        text = "true or false"
    elif isinstance(t, msgspec.inspect.IntType):
        text = "an integer" + _bounds(t)
    elif isinstance(t, msgspec.inspect.FloatType):
        text = "a number" + _bounds(t)
    elif isinstance(t, msgspec.inspect.StrType):
        # a pattern said in words where the field gives them (flag_meta(expected=…))
        text = extra.get("expected") or (
            "a string" + (f" matching {t.pattern}" if t.pattern else ""))
    elif isinstance(t, msgspec.inspect.LiteralType):
        text = "one of: " + ", ".join(str(v) for v in t.values)
    elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.SetType,
                        msgspec.inspect.TupleType, msgspec.inspect.VarTupleType)):
        text = "a list"
    elif isinstance(t, (msgspec.inspect.DictType, msgspec.inspect.StructType)):
        text = "an object"
    else:
        text = None
    if text is not None and nullable:
        text += " (or null)"
    return text


def _step(t: Any, name: str | None, index: str | None) -> Any:
    t, _, _ = _strip(t)
    if name is not None:
        if isinstance(t, msgspec.inspect.StructType):
            return next((f.type for f in t.fields if f.encode_name == name), None)
        return None
    if isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.SetType,
                      msgspec.inspect.VarTupleType)):
        return t.item_type
    if isinstance(t, msgspec.inspect.DictType):
        return t.value_type
    return None


def resolve(root: Any, data: Any, path: str) -> tuple[Any, Any, bool]:
    """The type and the value found at a msgspec path such as `$.workers[0].url`
    (type None if the path leaves the type; found False if the value is not there)."""
    t, value, found = root, data, True
    for name, index in _SEGMENT.findall(path[1:]):
        t = None if t is None else _step(t, name or None, index or None)
        if not found:
            continue
        if name and isinstance(value, dict) and name in value:
            value = value[name]
        elif index.isdigit() and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            found = False
    return t, value, found


def field_names(t: Any) -> list[str]:
    t, _, _ = _strip(t)
    if isinstance(t, msgspec.inspect.StructType):
        return [f.encode_name for f in t.fields]
    return []


def close(word: str, candidates: list[str]) -> str | None:
    """The candidate a typo most likely meant (difflib), if one is close."""
    found = difflib.get_close_matches(word.lower(), [c.lower() for c in candidates],
                                      n=1, cutoff=0.75)
    if not found:
        return None
    return next(c for c in candidates if c.lower() == found[0])


def shown(name: str, value: Any) -> str:
    """A value as an error message may show it: never a key's."""
    return "(hidden)" if _SECRET.search(name.rsplit(".", 1)[-1]) else repr(value)


def validation(exc: msgspec.ValidationError, struct: Any, data: Any) -> tuple[str, str]:
    """A validation error of `data` converted to `struct` -> (path, eldric's message)."""
    what, path = split(str(exc))
    root = msgspec.inspect.type_info(struct)
    t, value, found = resolve(root, data, path)
    unknown = _UNKNOWN.search(what)
    if unknown:
        key = unknown[1]
        hint = close(key, field_names(t))
        return f"{path}.{key}", "unknown key" + (f" (did you mean `{hint}`?)" if hint else "")
    if t is not None and (what.startswith("Expected") or what.startswith("Invalid enum")):
        want = expected(t)
        if want is not None:
            got = f", got {shown(path, value)}" if found else ""
            return path, f"must be {want}{got}"
    return path, what
