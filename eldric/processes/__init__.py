"""--processes N|auto: N processes serve each role on its one port (SO_REUSEPORT).

The first process is the supervisor and the primary (RoleInfo.index 0): it binds every
role's port, builds and starts its roles, listens on a private unix socket per role
(`<role>.sock`, in a 0700 directory of its own), then starts N-1 children by re-running
the same command line. A child serves the fast lane itself and splices every other
connection to the primary (eldric.serve.splice); it listens on `<role>-<i>.sock` for
the primary's questions (its own /metrics and /health). docs/design-notes.md, "Every
core: --processes".

This module is what the start-up needs before anything is built: how many processes,
which one this is, and what the primary handed a child (the environment below).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eldric.errors import ConfigError

# What the primary tells a child. Not settings (eldric.config ignores them, and no field's
# ELDRIC_* name can be one of these: the process fields' are ELDRIC_<FIELD>, and none is
# named process_*); ELDRIC_PROCESS_INDEX is what makes a process a child.
INDEX = "ELDRIC_PROCESS_INDEX"
PORTS = "ELDRIC_PROCESS_PORTS"  # json role -> the port the primary bound (--port 0 works)
DIR = "ELDRIC_PROCESS_DIR"  # the primary's private directory (its unix sockets)
FILES = "ELDRIC_PROCESS_FILES"  # json role -> {stem: name}: the state files it claimed
PARENT = "ELDRIC_PROCESS_PARENT"  # the primary's pid: a child whose parent is gone exits
ENV = frozenset((INDEX, PORTS, DIR, FILES, PARENT))


def cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def count(processes: str, roles: Sequence[Any], configs: Mapping[str, Any]) -> int:
    """How many processes serve each role: --processes, `auto` being the cores this
    process may run on. More than one is refused where state cannot be shared."""
    n = cores() if processes == "auto" else int(processes)
    if n <= 1:
        return 1
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Windows
        raise ConfigError(f"--processes {processes}: this system has no SO_REUSEPORT, "
                          "so processes cannot share a port; use --processes 1")
    names = [r.name for r in roles]
    if "controller" in names:
        # The controller's registry, jobs and long polls are the cluster's one source of
        # truth in memory: a second copy would disagree with the first.
        raise ConfigError(f"--processes {processes}: the controller runs in one process; "
                          "run it apart (--role controller) and give the other roles "
                          "--processes")
    worker = configs.get("worker")
    if worker is not None and getattr(worker, "backend", None) == "embedded":
        raise ConfigError(f"--processes {processes}: the embedded backend loads its model "
                          "into the process, and N processes would load it N times; use "
                          "--processes 1 with --backend embedded (llama.cpp uses every "
                          "core itself)")
    return n


@dataclass(slots=True)
class Plan:
    """This process's place: index 0 of n is the primary (and the supervisor)."""

    n: int = 1
    index: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    dir: str = ""
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    parent: int = 0

    @property
    def child(self) -> bool:
        return self.index > 0

    def sock(self, role: str, index: int | None = None) -> str:
        """The private socket of the role in the primary (`index` None) or in child i."""
        name = f"{role}.sock" if index is None else f"{role}-{index}.sock"
        return os.path.join(self.dir, name)


def plan(processes: str, roles: Sequence[Any], configs: Mapping[str, Any],
         env: Mapping[str, str]) -> Plan:
    n = count(processes, roles, configs)
    if n == 1 or INDEX not in env:
        return Plan(n=n)
    return Plan(n=n, index=int(env[INDEX]), ports=json.loads(env[PORTS]), dir=env[DIR],
                files=json.loads(env[FILES]), parent=int(env[PARENT]))
