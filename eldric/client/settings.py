"""Where the clients find eldric: a flag, else the environment (ELDRIC_URL,
ELDRIC_API_KEY, ELDRIC_ADMIN_KEY, ELDRIC_CONTROLLER, ELDRIC_ROUTER, ELDRIC_MODEL), else
`$XDG_CONFIG_HOME/eldric/client.json`, else the quick start's addresses, so
`eldric chat` works with no configuration against `eldric --role all`.

The file is strict (an unknown key is an error naming it), like the servers' config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

# The quick start (eldric --role all): edge on plain HTTP 8080, controller 8880, router 8881.
QUICK = {"url": "http://127.0.0.1:8080", "controller": "http://127.0.0.1:8880",
         "router": "http://127.0.0.1:8881"}


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str = QUICK["url"]
    api_key: str | None = None
    admin_key: str | None = None
    controller: str = QUICK["controller"]
    router: str = QUICK["router"]
    model: str | None = None


class SettingsError(Exception):
    """The config file is unreadable or wrong; its message is the line the user sees."""


def config_home(env: Mapping[str, str]) -> Path:
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def state_home(env: Mapping[str, str]) -> Path:
    return Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")


def config_file(env: Mapping[str, str]) -> Path:
    return config_home(env) / "eldric" / "client.json"


def load(env: Mapping[str, str] | None = None, **flags: str | None) -> Settings:
    """The settings: flags (None: not given) over ELDRIC_* over the file over QUICK."""
    env = os.environ if env is None else env
    path = config_file(env)
    try:
        found = msgspec.json.decode(path.read_bytes(), type=Settings)
    except FileNotFoundError:
        found = Settings()
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SettingsError(f"error: {path}: {exc}") from None
    for field in Settings.__struct_fields__:
        value = flags.get(field)
        if value is None:
            value = env.get("ELDRIC_" + field.upper()) or None
        if value is not None:
            setattr(found, field, value)
    for field in ("url", "controller", "router"):
        setattr(found, field, getattr(found, field).rstrip("/"))
    return found
