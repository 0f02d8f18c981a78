"""A plugin's manifest.json, strict: what the edge needs to know before running it.

A manifest that does not parse is not fatal to the edge: load() gives the reason, the
host lists the plugin with it (GET /api/v1/plugins) and never starts it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

SERVER_SIDE = ("tool", "filter", "pipe")  # run as a child process; action/widget are page JS

# An id names a directory, a URL path segment (/plugins/<id>/…) and a client (plugin:<id>).
_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class Manifest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(pattern=_ID)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    version: str = "0.0.0"
    type: Literal["tool", "filter", "pipe", "action", "widget"]
    description: str = ""
    entry: str = "main.py"  # python file (server side) or script (page side), in the dir
    priority: int = 0  # filters run lowest first
    timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=600_000)] = 2000
    applies_to: list[str] = msgspec.field(default_factory=lambda: ["*"])  # model globs (fnmatch)
    fail_mode: Literal["open", "closed"] = "closed"
    start: Literal["boot", "lazy"] = "boot"  # child started with the edge, or at first call
    # a tool plugin's tools: offered only to a request that asks (X-Eldric-Tools), or to
    # every request for a model it applies to; a valve "offer" overrides it at run time.
    # "request" by default: a backend that refuses `tools` is not broken by enabling one
    offer: Literal["request", "always"] = "request"
    valves: dict[str, Any] = {}  # JSON Schema of the valves (an object's schema)


_decode = msgspec.json.Decoder(Manifest).decode


def load(directory: Path) -> Manifest | str:
    """The manifest in `directory`, or why there is none usable."""
    path = directory / "manifest.json"
    try:
        m = _decode(path.read_bytes())
    except OSError as e:
        return f"cannot read manifest.json: {e.strerror or e}"
    except msgspec.ValidationError as e:
        return f"manifest.json: {e}"
    except msgspec.DecodeError as e:
        return f"manifest.json is not JSON: {e}"
    if m.id != directory.name:
        return f"manifest.json: id {m.id!r} is not the directory's name {directory.name!r}"
    entry = (directory / m.entry).resolve()
    if not entry.is_relative_to(directory.resolve()) or not entry.is_file():
        return f"manifest.json: entry {m.entry!r} is not a file in the plugin's directory"
    if m.valves and m.valves.get("type", "object") != "object":
        return "manifest.json: valves must be the JSON Schema of an object"
    return m


def ok_id(text: str) -> bool:
    return re.match(_ID, text) is not None
