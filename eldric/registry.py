"""The role registry: built-in roles plus the "eldric.roles" entry-point group.

A role is data plus one function (see ``Role``); eldric's CLI knows no role by name, it
asks this registry. Roles are imported lazily: ``eldric --help`` lists names without
importing every role's dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import msgspec

from eldric.errors import ConfigError

ENTRY_POINT_GROUP = "eldric.roles"

# name -> "module:attr". Third-party roles come from the entry-point group instead.
# The order is the start-up order of --role all: a role starts after those it talks to.
BUILTIN: dict[str, str] = {
    "controller": "eldric.roles.controller:ROLE",
    "worker": "eldric.roles.worker:ROLE",
    "cloud": "eldric.roles.cloud:ROLE",
    "router": "eldric.roles.router:ROLE",
    "edge": "eldric.roles.edge:ROLE",
}


@dataclass(frozen=True)
class Role:
    """What eldric needs to run a role.

    ``build(app, cfg)`` adds the role's routes and ``cleanup_ctx`` entries to an aiohttp
    application that already carries the shared process state (see ``eldric.keys``) and
    the common routes (/health, /api/v1/health, /metrics).
    """

    name: str
    port: int
    config: type[msgspec.Struct]
    build: Callable[[Any, Any], None]
    description: str = ""
    # Config overrides applied (below file, env and flags) when run as part of --role all.
    quickstart: Mapping[str, Any] = field(default_factory=dict)
    # Whether --role all includes this role.
    in_all: bool = True
    # listen(cfg) -> (port, ssl.SSLContext | None): where and how the role listens when
    # that is more than cfg.port in plain HTTP (the edge: HTTPS, or --no-tls --http-port).
    # It may raise ConfigError (a missing certificate) to refuse to start.
    listen: Callable[[Any], tuple[int, Any]] | None = None
    # Pages worth opening, shown in the start-up banner: (label, path), e.g. ("chat", "/chat").
    links: tuple[tuple[str, str], ...] = ()
    # summary(cfg) -> a few words for the banner (the worker: which backend it runs).
    summary: Callable[[Any], str] | None = None
    # waiting_for(app) -> None once a request to this role would succeed, else what it
    # still waits for, in a few words ("the embedded model to load"). May be a coroutine,
    # and may check its upstreams again to find out sooner: it is polled a few times a
    # second after start-up until ready, for the banner (eldric.readiness).
    waiting_for: Callable[[Any], Awaitable[str | None] | str | None] | None = None
    # field -> how to set it for this role alone, where ELDRIC_<ROLE>_<FIELD> is not the
    # whole story (the edge's port in plain HTTP is http_port); the ambiguous-flag error
    # suggests this instead of the plain variable.
    env_hints: Mapping[str, str] = field(default_factory=dict)
    # auth_keys(cfg) -> (admin key, cluster key) of the role's config, for what every role may
    # serve beside its own routes (the model registry: changes need the admin key, reads
    # take either); None where the role has no such key.
    auth_keys: Callable[[Any], tuple[str | None, str | None]] | None = None
    # Serve the model registry at DATA_DIR/registry when --registry-dir is not given.
    registry_by_default: bool = False
    # kinds() -> {kind: facts}: the backend kinds this role speaks, from its own table
    # (the worker's KINDS, the cloud role's PROVIDER_KINDS), each a JSON-able mapping
    # (default_url, paths, …). `eldric backends` lists them through the registry: the
    # clients may not import a role.
    kinds: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None

    def defaults(self, quickstart: bool = False) -> dict[str, Any]:
        """The layer below file, env and flags: the role's port (and the quick start's
        overrides under --role all)."""
        return {"port": self.port, **(self.quickstart if quickstart else {})}


def available() -> dict[str, str]:
    """Every known role name -> its "module:attr" target (built-ins win on a clash)."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


def load(name: str) -> Role:
    # A built-in wins over an entry point of its name: no need to scan the installed
    # packages' entry points for it (a scan costs a start tens of milliseconds).
    roles = BUILTIN if name in BUILTIN else available()
    if name not in roles:
        raise ConfigError(f"unknown role {name!r}; known roles: {', '.join(sorted(roles))}")
    target = roles[name]
    module_name, _, attr = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr or "ROLE")
    except Exception as exc:  # a broken plugin must not crash the CLI with a traceback
        raise ConfigError(f"role {name!r} ({target}) could not be loaded: {exc}") from None
    if not isinstance(obj, Role):
        raise ConfigError(f"role {name!r} ({target}) is not an eldric.registry.Role")
    return obj


def resolve(spec: str) -> list[Role]:
    """`worker`, `router,worker` or `all` -> the Role objects, in the order given."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ConfigError("--role is empty; known roles: " + ", ".join(sorted(available())))
    if names == ["all"]:
        return [r for r in (load(n) for n in BUILTIN) if r.in_all]
    if len(set(names)) != len(names):
        raise ConfigError(f"--role names a role twice: {spec}")
    return [load(n) for n in names]
