"""Small per-role and per-request records shared by the middleware, stream/ and roles."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one process per dir
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from aiohttp import web

    from eldric.exchange import Lane


@dataclass(slots=True)
class RoleInfo:
    name: str
    advertise_url: str
    port: int = 0  # the configured port (0: any free one), which names the state files
    # Where this process itself reaches the role (http://127.0.0.1:PORT when bound to any
    # address): a tunnelled worker hands its requests to its own listener there.
    local_url: str = ""
    started: float = field(default_factory=time.time)
    active: int = 0  # requests being handled now (read by /metrics at scrape time)
    files: dict[str, str] = field(default_factory=dict)  # data_file() stem -> claimed base
    locks: list[int] = field(default_factory=list)  # fds holding the claimed names
    # The role's tracer when tracing is on (eldric.trace.otel), else None: the
    # middleware's one question per request.
    tracer: Any = None
    # --processes (eldric.serve.processes): which of the role's processes this is and how
    # many share its port. The primary (index 0) alone speaks for the role to others
    # (registration, heartbeats, tunnels) and alone runs what writes shared stored state
    # (the batch runner, pruners); every process serves the fast lane.
    index: int = 0
    processes: int = 1
    bound_port: int = 0  # the port it listens on (port 0 resolved): children bind it too

    @property
    def primary(self) -> bool:
        return self.index == 0

    def release(self) -> None:
        """Give the claimed state-file names back (at app clean-up; exit does it too)."""
        for fd in self.locks:
            os.close(fd)
        self.locks.clear()
        self.files.clear()


@dataclass(slots=True)
class Hop:
    """What one request did at this hop; the access log line and metrics read it."""

    request_id: str
    role: str
    started: float  # perf_counter()
    # Which lane the request came on (eldric.exchange): told by whoever called the
    # middleware, never asked of the request.
    lane: Lane
    model: str | None = None
    upstream: str | None = None
    ttfb: float | None = None  # seconds from arrival to the first byte sent to the client
    # a non-SSE reply up to this many bytes is read whole even past forward()'s own limit:
    # one this hop keeps (a /v1/responses reply for its store) must be seen whole
    whole_limit: int = 0
    # the last upstream reply's head (its raw header pairs, as forward() got them): who
    # answered, for whoever counts the request (the edge's usage reads X-Eldric-Worker)
    reply_head: Any = None
    # This hop's request span when tracing is on (eldric.trace), else None: the one
    # question every traced place asks, so tracing off costs an attribute read.
    span: Any = None


def _claim(info: RoleInfo, data_dir: str, base: str) -> str:
    """The first of base, base-2, base-3, … that no running process holds. Each name is
    held through an flock on `<name>.lock` for as long as the role runs, so two processes
    sharing a data dir with the same port (two `--port 0` workers) never share an id or a
    database; a lone process gets the plain name on every run."""
    if fcntl is None:
        return base
    n = 1
    while True:
        name = base if n == 1 else f"{base}-{n}"
        fd = os.open(os.path.join(data_dir, f"{name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            n += 1
            continue
        info.locks.append(fd)
        return name


def data_file(app: web.Application, name: str, *, formerly: str | None = None) -> str:
    """A role's own file in --data-dir, named for the role and its configured port
    (`controller-8880.db`, `worker-8890.id`, `worker-0.id` with --port 0), never for an
    advertised URL, so several roles share one directory and a name is stable across runs.
    `formerly`: the stem the file had in an earlier version (`cld` for `cloud.id`); a file
    of that name is taken over."""
    from eldric import keys  # keys imports this module's types

    info = app[keys.ROLE]
    data_dir = app[keys.PROCESS].data_dir
    stem, _, ext = name.partition(".")
    if stem not in info.files and not info.primary:
        # a child of --processes claims nothing: its primary holds the names (handed over
        # at start); one the primary had not used by then is the plain name it would get
        info.files[stem] = f"{stem}-{info.port}"
    if stem not in info.files:
        base = info.files[stem] = _claim(info, data_dir, f"{stem}-{info.port}")
        new = os.path.join(data_dir, f"{base}.{ext}")
        _adopt_old_name(info, data_dir, stem, ext, new)
        if formerly and formerly != stem:  # the same claim under the old stem: cld-0-2.id
            _take_over(os.path.join(data_dir, f"{formerly}{base[len(stem):]}.{ext}"), new,
                       "state files are named for their role now")
    return os.path.join(data_dir, f"{info.files[stem]}.{ext}")


def _adopt_old_name(info: RoleInfo, data_dir: str, stem: str, ext: str, new: str) -> None:
    """Before 0.2 a state file was named for the port of the advertised URL. Where that
    port differs from the configured one (an edge behind a balancer), the old file is
    this role's state: take it over rather than start on an empty database."""
    old_port = info.advertise_url.rsplit(":", 1)[-1].split("/", 1)[0]
    if old_port.isdigit():
        _take_over(os.path.join(data_dir, f"{stem}-{old_port}.{ext}"), new,
                   "state files are named for the configured port now, not the advertised one")


def _take_over(old: str, new: str, why: str) -> None:
    """Rename `old` to `new` unless `new` exists already (or `old` does not)."""
    if old == new or os.path.exists(new) or not os.path.exists(old):
        return
    for suffix in ("", "-wal", "-shm"):  # SQLite's write-ahead log travels with it
        if os.path.exists(old + suffix):
            os.replace(old + suffix, new + suffix)
    structlog.get_logger("eldric").warning("state_file_renamed", old=old, new=new, why=why)
