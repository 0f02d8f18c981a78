"""Where the clients connect and with which keys: flags, then ELDRIC_* variables, then
`$XDG_CONFIG_HOME/eldric/client.json`, then the quick start's addresses, so `eldric chat`
works with no configuration against `eldric --role all`.

The variables are the ones the roles already read for the same thing (a worker's
ELDRIC_CONTROLLER_URL is the controller an operator on that host means too), so one
environment serves both. The file is strict like the roles' config: a key the clients do
not know is refused by name, not ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

# The quick start (`eldric --role all`): the edge's plain HTTP port, the controller's and
# the router's default ports.
EDGE_URL = "http://127.0.0.1:8080"
CONTROLLER_URL = "http://127.0.0.1:8880"
ROUTER_URL = "http://127.0.0.1:8881"


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str = EDGE_URL  # what `chat` and `keys` talk to (an edge, or any OpenAI endpoint)
    api_key: str | None = None
    admin_key: str | None = None  # the admin calls: keys, workers remove, pulls, config
    controller_url: str = CONTROLLER_URL
    router_url: str = ROUTER_URL
    model: str | None = None  # `chat`'s model when --model is not given


class SettingsError(Exception):
    """A client.json that cannot be read: one line naming the file."""


ENV = {"url": "ELDRIC_URL", "api_key": "ELDRIC_API_KEY", "admin_key": "ELDRIC_ADMIN_KEY",
       "controller_url": "ELDRIC_CONTROLLER_URL", "router_url": "ELDRIC_ROUTER_URL",
       "model": "ELDRIC_MODEL"}


def path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "eldric" / "client.json"


def state_home(env: Mapping[str, str]) -> Path:
    return Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")


def load(env: Mapping[str, str] | None = None, **flags: str | None) -> Settings:
    """The file's settings, the environment's on top, and the flags given (None: not
    given) on top of those; URLs without a trailing slash."""
    env = os.environ if env is None else env
    file = path(env)
    values: dict[str, object] = {}
    if file.is_file():
        try:
            values = msgspec.json.decode(file.read_bytes(), type=dict)
            msgspec.convert(values, Settings)
        except (msgspec.DecodeError, msgspec.ValidationError, OSError) as exc:
            raise SettingsError(f"error: {file}: {exc}") from None
    values |= {field: env[name] for field, name in ENV.items() if env.get(name)}
    values |= {field: v for field, v in flags.items() if v is not None}
    found = msgspec.convert(values, Settings)
    for field in ("url", "controller_url", "router_url"):
        setattr(found, field, getattr(found, field).rstrip("/"))
    return found
