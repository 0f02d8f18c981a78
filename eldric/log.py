"""structlog set-up: console lines for people, JSON lines for machines.

Request-scoped fields (request id, role) are bound through contextvars by the HTTP
middleware, so every log line emitted while a request is handled carries them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

# Field names whose values must never reach a log line, whatever a caller passes.
_SECRET_FIELDS = frozenset({"api_key", "authorization", "backend_api_key", "cluster_key",
                            "admin_key", "password", "token", "x-api-key"})

_json = msgspec.json.Encoder(enc_hook=str)


def _redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for field in _SECRET_FIELDS.intersection(event):
        if event[field]:
            event[field] = "***"
    return event


def _json_bytes(_logger: Any, _name: str, event: dict[str, Any]) -> bytes:
    return _json.encode(event)


def setup(level: str = "info", fmt: str = "console") -> None:
    level_no = logging.getLevelName(level.upper())
    if not isinstance(level_no, int):
        level_no = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    if fmt == "json":
        processors = [*shared, structlog.processors.format_exc_info, _json_bytes]
        factory: Any = structlog.BytesLoggerFactory(sys.stderr.buffer)
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
        factory = structlog.PrintLoggerFactory(sys.stderr)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries that use stdlib logging (aiohttp) go to the same stream, less chatty.
    logging.basicConfig(level=max(level_no, logging.WARNING), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
