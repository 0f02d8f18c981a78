"""The error tree every role raises, and how it is rendered.

Every error a client sees is OpenAI-shaped: ``{"error": {"message", "type", "param",
"code"}}`` with the HTTP status that fits. Handlers raise an ``EldricError``; the one
middleware in ``eldric.http`` renders it. Upstream error bodies are normalised to the same
shape by ``eldric.stream.upstream_errors``.
"""

from __future__ import annotations

import msgspec

# OpenAI's "type" for a status, used when an upstream or aiohttp gives only a status.
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    429: "rate_limit_error",
}


def error_type_for(status: int) -> str:
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


class ErrorBody(msgspec.Struct, omit_defaults=False):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody


def error_json(status: int, message: str, *, type: str | None = None,
               param: str | None = None, code: str | None = None) -> bytes:
    return msgspec.json.encode(ErrorEnvelope(ErrorBody(
        message=message, type=type or error_type_for(status), param=param, code=code)))


class EldricError(Exception):
    """Base of every error rendered to a client. Subclasses fix status and code; the
    OpenAI "type" follows from the status (error_type_for)."""

    status = 500
    code: str | None = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_json(self.status, self.message, param=self.param, code=self.code)


class BadRequest(EldricError):
    status = 400
    code = "invalid_request"


class Unauthorized(EldricError):
    status = 401
    code = "invalid_api_key"


class NotFound(EldricError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class RateLimited(EldricError):
    status = 429
    code = "rate_limit_exceeded"


class UpstreamUnavailable(EldricError):
    status = 503
    code = "upstream_unavailable"


class UpstreamTimeout(EldricError):
    status = 504
    code = "upstream_timeout"


class ConfigError(Exception):
    """A start-up configuration problem: printed as one line, exit status 2."""
