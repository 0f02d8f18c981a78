"""The error tree every role raises, and how it is rendered.

Every error a client sees is OpenAI-shaped: ``{"error": {"message", "type", "param",
"code"}}`` with the HTTP status that fits. Handlers raise an ``EldricError``; the one
middleware in ``eldric.http`` renders it. Upstream error bodies are normalised to the same
shape by ``eldric.stream.upstream_errors``. ``UpstreamFailure`` is what the forwarding
core raises while nothing has reached the client; it lives here, not in ``eldric.stream``,
so the middleware that renders it and the roles that catch it need not import the core.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

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
    """A 504 to the client (the core's own "the upstream was silent" is
    eldric.stream.client.ReplyTimeout)."""

    status = 504
    code = "upstream_timeout"


class ConfigError(Exception):
    """A start-up configuration problem: printed as one line, exit status 2."""


def message_of(error_body: bytes) -> str:
    """The message of an OpenAI-shaped error body (for logs and retry reports)."""
    try:
        return msgspec.json.decode(error_body)["error"]["message"]
    except Exception:
        return error_body[:200].decode("utf-8", "replace")


# Statuses that say "not here" rather than "broken": the upstream does not implement the
# path (llama.cpp's 501 for embeddings that are off) or the method (and an eldric hop's
# 400 vision_unsupported, below). Another upstream may
# serve it, so they are worth a retry elsewhere, but they never count against the
# upstream's health, and when nobody serves it the client gets this status, not a 503.
NOT_HERE = frozenset((405, 501))
# Asking again will not help: the OpenAI and Anthropic SDKs honour this and do not retry
# (they retry every other 5xx twice).
NOT_HERE_HEADERS = {"X-Should-Retry": "false"}


def _cannot_see(error_body: bytes) -> bool:
    """Whether a 400 is an eldric hop's vision_unsupported (eldric.wire.vision): "not
    here" too, since its backend cannot see the request's images and another serving the
    model may (a router's workers differ in vision; it does not route by it). The code is
    kept in the normalised OpenAI-shaped body, whatever dialect the hop answered in."""
    if b'"vision_unsupported"' not in error_body:
        return False
    try:
        err = msgspec.json.decode(error_body).get("error")
    except (msgspec.DecodeError, AttributeError):
        return False
    return isinstance(err, dict) and err.get("code") == "vision_unsupported"


class UpstreamFailure(Exception):
    """The upstream failed before any byte reached the client.

    What it says about the upstream's health is the bus's to decide (Bus.mark_down)."""

    def __init__(self, upstream: str, kind: str, status: int, error_body: bytes):
        if kind == "status" and (status in NOT_HERE or status == 400 and _cannot_see(error_body)):
            kind = "unsupported"
        self.upstream = upstream
        self.kind = kind  # connect | timeout | closed | status | unsupported
        self.status = status  # what the client gets if nobody retries
        self.error_body = error_body  # OpenAI-shaped JSON
        self.retryable = kind != "status" or status >= 500 or status == 429
        self.message = message_of(error_body)
        # The upstream's own reply headers worth keeping when this is relayed (its
        # Retry-After, a router's X-Eldric-*); the body is re-encoded JSON, so not its
        # Content-Type or Content-Encoding.
        self.headers: list[tuple[str, str]] = []
        super().__init__(f"{upstream}: {self.message}")

    @classmethod
    def of(cls, upstream: str, kind: str, status: int, message: str) -> UpstreamFailure:
        """A failure with eldric's own message: connect (no connection: refused,
        unreachable, connect timeout), timeout (no reply in time), closed (the reply
        broke off or was not HTTP)."""
        code = "upstream_timeout" if status == 504 else (
            "upstream_unavailable" if kind == "connect" else "upstream_error")
        return cls(upstream, kind, status, error_json(status, message, code=code))

    def response(self) -> web.Response:
        resp = web.Response(status=self.status, body=self.error_body,
                            content_type="application/json")
        resp.headers.extend(self.headers)
        if self.kind == "unsupported":
            resp.headers.update(NOT_HERE_HEADERS)
        return resp
