"""OpenAI chat completions <-> Claude on Vertex AI (rawPredict / streamRawPredict), pure.

Vertex serves Anthropic's Messages API under its own resource path, the model in the path
instead of the body and ``anthropic_version: "vertex-2023-10-16"`` in the body instead of
a header: https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/
use-claude. The request and reply are the Messages API's, so the translation is
eldric/wire/anthropic_egress*.py's (the Egress is backends/native/anthropic.py's Messages,
under Vertex's path: backends/native/vertex.py); errors come in two shapes: the Vertex front's
google.rpc.Status (quota, auth, unknown model) and the model's own Anthropic error.
"""

from __future__ import annotations

import msgspec

from eldric.errors import error_json
from eldric.wire.anthropic_shared import ERRORS
from eldric.wire.native import gemini

VERSION = "vertex-2023-10-16"

_decode = msgspec.json.decode


def error(status: int, raw: bytes, upstream: str) -> tuple[int, bytes] | None:
    """A Vertex Status error, else Anthropic's ``{"type": "error", "error": {type,
    message}}`` (its 529 overloaded a 503); None for a body that is neither."""
    try:
        data = _decode(raw) if raw else None
    except (msgspec.DecodeError, UnicodeDecodeError):
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and "status" in err:
        return gemini.error(status, raw, upstream)
    if status == 529:
        status = 503
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return None
    kind = str(err.get("type") or "")
    otype, code, _ = ERRORS.get(kind, ("", kind, status))
    return status, error_json(status, err["message"], type=otype or None, code=code or None)
