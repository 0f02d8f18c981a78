"""structlog set-up: console lines for people, JSON lines for machines.

The HTTP middleware sets the request id in REQUEST_ID (fields bound through structlog's
contextvars, e.g. a controller job's, are merged too), so every log line emitted while a
request is handled carries it.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import logging
import sys
import time
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

import msgspec
import structlog

# Field names whose values must never reach a log line, whatever a caller passes.
_SECRET_FIELDS = frozenset({"api_key", "authorization", "backend_api_key", "cluster_key",
                            "admin_key", "password", "token", "x-api-key"})

_json = msgspec.json.Encoder(enc_hook=str)

# The id of the request being handled, for every log line made meanwhile (tasks it starts
# inherit it). One ContextVar set by the middleware: structlog's bind_contextvars() and
# reset cost 2.3 us a request (timeit), a set and reset of this 0.2 us.
REQUEST_ID: ContextVar[str | None] = ContextVar("eldric_request_id", default=None)


def _add_request_id(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    rid = REQUEST_ID.get()
    if rid is not None and "request_id" not in event:
        event["request_id"] = rid
    return event


def unbind_request() -> None:
    """In a task that outlives the request which started it: its lines are not that
    request's."""
    REQUEST_ID.set(None)


def _redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for field in _SECRET_FIELDS.intersection(event):
        if event[field]:
            event[field] = "***"
    return event


def _json_bytes(_logger: Any, _name: str, event: dict[str, Any]) -> bytes:
    return _json.encode(event)


class _Deferred:
    """A stream whose flush() waits for flush_now(): structlog flushes after every line,
    which is one write(2) per request on the hot path. Lines are buffered and written at
    most FLUSH_INTERVAL later (like nginx's `access_log ... buffer= flush=`), at exit, and
    at once when a person watches a terminal."""

    FLUSH_INTERVAL = 0.2

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.write = raw.write

    def flush(self) -> None:
        pass

    def flush_now(self) -> None:
        try:
            self.raw.flush()
        except (OSError, ValueError):  # stderr closed under us: nothing left to tell
            pass


_deferred: list[_Deferred] = []


def flush() -> None:
    for stream in _deferred:
        stream.flush_now()


atexit.register(flush)


async def flush_periodically() -> None:
    """Runs for the life of the process (started by eldric.app.serve)."""
    while True:
        await asyncio.sleep(_Deferred.FLUSH_INTERVAL)
        flush()


def _stream(binary: bool) -> Any:
    if sys.stderr.isatty():
        return sys.stderr.buffer if binary else sys.stderr
    # A non-interactive sys.stderr is line-buffered (a write(2) per line) and its byte
    # buffer holds 8 KiB; our own 256 KiB buffer on the same descriptor writes rarely.
    try:
        raw: Any = io.BufferedWriter(io.FileIO(sys.stderr.fileno(), "wb", closefd=False),
                                     buffer_size=1 << 18)
    except (OSError, ValueError, AttributeError):  # stderr without a descriptor
        raw = sys.stderr.buffer
    if not binary:
        raw = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", line_buffering=False)
    stream = _Deferred(raw)
    _deferred.append(stream)
    return stream


def no_access(fields: dict[str, Any]) -> None:
    pass


# The one line per request is rendered directly, in the same shape as structlog's JSON
# and console renderers, without its processor chain: on the hot path that chain cost
# ~12% of the worker's CPU. Every other line goes through structlog.
access_line: Any = no_access
# The same line at debug level: eldric's own polling (health checks, syncs, heartbeats)
# and health/metrics scrapes, which at info drowned the clients' requests. no_access
# unless the log level is debug, so deciding to skip such a line is one identity test.
access_debug: Any = no_access

# The User-Agent of eldric's own requests (its aiohttp ClientSession): a request carrying
# it is eldric talking to itself, logged at debug.
USER_AGENT_PREFIX = "eldric/"


class _Clock:
    """ISO-8601 UTC timestamps, the seconds part formatted once per second."""

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def iso(self) -> str:
        now = time.time()
        sec = int(now)
        if sec != self._sec:
            self._sec = sec
            self._prefix = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((now - sec) * 1_000_000):06d}Z"


def _json_access(stream: Any, clock: _Clock, level: str = "info") -> Any:
    write = stream.write

    def line(fields: dict[str, Any]) -> None:
        fields["event"] = "request"
        fields["level"] = level
        fields["timestamp"] = clock.iso()
        write(_json.encode(fields) + b"\n")

    return line


def _console_access(stream: Any, clock: _Clock, level: str = "info") -> Any:
    write = stream.write
    tag = f"[{level:<9}]"

    def line(fields: dict[str, Any]) -> None:
        kv = " ".join(f"{k}={v}" for k, v in sorted(fields.items()))
        write(f"{clock.iso()} {tag} {'request':<30} {kv}\n")

    return line


def setup(level: str = "info", fmt: str = "console") -> None:
    level_no = logging.getLevelName(level.upper())
    if not isinstance(level_no, int):
        level_no = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    global access_line, access_debug
    clock = _Clock()
    if fmt == "json":
        processors = [*shared, structlog.processors.format_exc_info, _json_bytes]
        stream = _stream(binary=True)
        factory: Any = structlog.BytesLoggerFactory(stream)
        access = _json_access
    else:
        # plain_traceback: with rich installed (eldric chat needs it) structlog's default
        # is rich's traceback with every frame's locals, which puts keys and request
        # bodies in the log; a log line's exception stays the standard text.
        processors = [*shared, structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)]
        stream = _stream(binary=False)
        factory = structlog.PrintLoggerFactory(stream)
        access = _console_access
    access_line = access(stream, clock) if level_no <= logging.INFO else no_access
    access_debug = access(stream, clock, "debug") if level_no <= logging.DEBUG else no_access
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries that use stdlib logging (aiohttp) go to the same stream, less chatty.
    logging.basicConfig(level=max(level_no, logging.WARNING), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
