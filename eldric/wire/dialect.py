"""Which client API a path belongs to, and its error shape.

Every error eldric sends is in the shape of the API the client called: the `anthropic` SDK
reads ``{"type": "error", "error": {"type", "message"}}`` on /v1/messages, Ollama's client
``{"error": "…"}`` on /api/*, everything else OpenAI's ``{"error": {"message", "type",
"param", "code"}}``. eldric's own code rides along in each (``code``), so a client or a
test can tell eldric's refusals apart whatever the shape. Chosen by path alone: nothing is
parsed on the way, and a pass-through and a translated reply on one path agree.
"""

from __future__ import annotations

import msgspec

from eldric.errors import error_json

_enc = msgspec.json.Encoder()

# Anthropic's error type for a status (https://docs.anthropic.com/en/api/errors); other
# 4xx are invalid_request_error, other 5xx api_error.
_ANTHROPIC_TYPES = {401: "authentication_error", 402: "billing_error",
                    403: "permission_error", 404: "not_found_error", 409: "conflict_error",
                    413: "request_too_large", 429: "rate_limit_error", 504: "timeout_error",
                    529: "overloaded_error"}


class Dialect:
    """OpenAI's shape; the other dialects override the two renderings."""

    name = "openai"

    def error(self, status: int, message: str, *, type: str | None = None,
              param: str | None = None, code: str | None = None) -> bytes:
        return error_json(status, message, type=type, param=param, code=code)

    def stream_error(self, status: int, message: str, code: str) -> bytes:
        """The event that ends a stream that failed after its first byte."""
        return b"data: " + self.error(status, message, code=code) + b"\n\n"

    def from_openai(self, status: int, body: bytes) -> bytes:
        """An OpenAI-shaped error body (what eldric normalises upstream errors to) in this
        dialect, for a reply of `status`."""
        return body


class _Anthropic(Dialect):
    name = "anthropic"

    def error(self, status: int, message: str, *, type: str | None = None,
              param: str | None = None, code: str | None = None) -> bytes:
        kind = _ANTHROPIC_TYPES.get(status) or (
            "api_error" if status >= 500 else "invalid_request_error")
        err: dict = {"type": kind, "message": message}
        if code is not None:
            err["code"] = code
        if param is not None:
            err["param"] = param
        return _enc.encode({"type": "error", "error": err})

    def stream_error(self, status: int, message: str, code: str) -> bytes:
        # the SDK reads only named events, and raises on `event: error`
        return b"event: error\ndata: " + self.error(status, message, code=code) + b"\n\n"

    def from_openai(self, status: int, body: bytes) -> bytes:
        return _reshape(self, status, body)


class _Ollama(Dialect):
    name = "ollama"

    def error(self, status: int, message: str, *, type: str | None = None,
              param: str | None = None, code: str | None = None) -> bytes:
        err: dict = {"error": message}
        if code is not None:
            err["code"] = code
        return _enc.encode(err)

    def stream_error(self, status: int, message: str, code: str) -> bytes:
        # Ollama's streams are NDJSON; an error mid-stream is one {"error": …} line
        return self.error(status, message, code=code) + b"\n"

    def from_openai(self, status: int, body: bytes) -> bytes:
        return _reshape(self, status, body)


def _reshape(dialect: Dialect, status: int, body: bytes) -> bytes:
    try:
        err = msgspec.json.decode(body)["error"]
        return dialect.error(status, str(err.get("message") or ""), param=err.get("param"),
                             code=err.get("code"))
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        return body


OPENAI = Dialect()
ANTHROPIC = _Anthropic()
OLLAMA = _Ollama()


def of_path(path: str) -> Dialect:
    """The dialect of a request path: cheap enough to ask on every error."""
    if path.startswith("/v1/messages"):
        return ANTHROPIC
    if path.startswith("/api/") and not path.startswith("/api/v1/"):
        return OLLAMA
    return OPENAI
