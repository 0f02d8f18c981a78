"""Normalise an upstream's error body to the OpenAI error shape, status kept.

Backends disagree: OpenAI/vLLM send {"error": {...}}, Ollama {"error": "..."}, TGI
{"error": "...", "error_type": "..."}, FastAPI-based servers {"detail": ...}, others plain
text. Clients get one shape whatever the backend.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.errors import error_json, error_type_for


def _message_of(data: Any) -> str | None:
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for key in ("message", "error", "detail", "msg"):
            if key in data:
                return _message_of(data[key])
    if isinstance(data, list) and data:
        return "; ".join(filter(None, (_message_of(x) for x in data)))
    return None


def normalise(status: int, body: bytes, upstream: str) -> bytes:
    """OpenAI-shaped error JSON for an upstream's error reply."""
    try:
        data = msgspec.json.decode(body) if body else None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        data = None  # not JSON (or nested past the decoder's depth): its text is the message
    if isinstance(data, dict) and isinstance(data.get("error"), dict) \
            and isinstance(data["error"].get("message"), str):
        err = data["error"]
        # Fields beyond the four are the upstream's to say (an eldric worker's
        # model_loading carries its load progress): kept, the four made regular.
        return msgspec.json.encode({"error": {
            **err, "message": err["message"], "type": err.get("type") or error_type_for(status),
            "param": err.get("param"), "code": _str_or_none(err.get("code"))}})
    message = _message_of(data) if data is not None else body.decode("utf-8", "replace").strip()
    if not message:
        message = f"upstream {upstream} answered HTTP {status}"
    code = _code_of(data)
    return error_json(status, message, code=_str_or_none(code))


def _code_of(data: Any) -> Any:
    """TGI's error_type; or eldric's own code in the Ollama-shaped error an eldric worker
    sent ({"error": "…", "code": "…"}; vLLM's top-level "code" is a status number)."""
    if not isinstance(data, dict):
        return None
    if data.get("error_type") is not None:
        return data["error_type"]
    code = data.get("code")
    return code if isinstance(data.get("error"), str) and isinstance(code, str) else None


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)
