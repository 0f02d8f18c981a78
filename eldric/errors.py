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
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
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
    """Base of every error rendered to a client. Subclasses fix status/type/code."""

    status = 500
    type = "api_error"
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
            self.type = error_type_for(status)
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_json(self.status, self.message, type=self.type, param=self.param,
                          code=self.code)


class BadRequest(EldricError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(EldricError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class NotFound(EldricError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(EldricError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(EldricError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BadGateway(EldricError):
    status = 502
    type = "api_error"
    code = "bad_gateway"


class UpstreamUnavailable(EldricError):
    status = 503
    type = "api_error"
    code = "upstream_unavailable"


class UpstreamTimeout(EldricError):
    status = 504
    type = "api_error"
    code = "upstream_timeout"


class ConfigError(Exception):
    """A start-up configuration problem: printed as one line, exit status 2."""
