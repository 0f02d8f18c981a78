"""Ollama's native API shapes eldric reads (GET /api/tags of an Ollama backend) and the
bodies it answers itself where no Ollama is behind it: /api/tags, /api/show, /api/ps,
/api/version.

Shapes follow Ollama's docs/api.md and api/types.go (ListModelResponse, ShowResponse,
ProcessModelResponse, ModelDetails); unknown details are the empty values Ollama itself
writes (`"parent_model": ""`, Go's zero time). Every entry of /api/tags has both `name`
and `model`: Open WebUI reads both, the `ollama` client `model`.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from eldric.errors import BadRequest
from eldric.wire.head import decode_head

# The Ollama release whose API these shapes follow. /api/version reports it (not eldric's
# own version), so a client that gates features on Ollama's version sees the API it gets;
# Open WebUI needs dotted integers.
API_VERSION = "0.33.0"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time: what Ollama writes for "unknown"
# Ollama's model endpoints beside the translated ones (eldric.wire.translated): the GETs
# any hop answers from what it knows, and /api/show, routed by its model.
LISTING = ("/api/tags", "/api/version", "/api/ps")
SHOW = "/api/show"

_encode = msgspec.json.encode


class Tag(msgspec.Struct):
    name: str
    model: str | None = None
    modified_at: str | None = None


class Tags(msgspec.Struct):
    models: list[Tag] = []


class ShowRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    name: str | None = None  # the older spelling, still read by Ollama's server
    verbose: bool | None = None


def show_model(raw: bytes) -> str:
    """The model a POST /api/show asks about; a 400 without one, as on Ollama."""
    body = decode_head(raw, ShowRequest)
    model = body.model or body.name
    if not model:
        raise BadRequest("model is required", param="model")
    return model


def details(family: str = "", parameter_size: str = "", quantization_level: str = "",
            format: str = "") -> dict:
    return {"parent_model": "", "format": format, "family": family,
            "families": [family] if family else [], "parameter_size": parameter_size,
            "quantization_level": quantization_level}


def tags(models: Iterable[str]) -> bytes:
    """GET /api/tags for models known by name only (the cluster's model list)."""
    return _encode({"models": [
        {"name": m, "model": m, "modified_at": ZERO_TIME, "size": 0, "digest": "",
         "details": details()} for m in models]})


def show(*, model_info: dict | None = None, capabilities: Iterable[str] = ("completion",),
         model_details: dict | None = None) -> bytes:
    """POST /api/show of a model that no Ollama describes: what is known of it (the
    GGUF's metadata where eldric has the file), the rest empty."""
    return _encode({"modelfile": "", "parameters": "", "template": "",
                    "details": model_details or details(), "model_info": model_info or {},
                    "capabilities": list(capabilities), "modified_at": ZERO_TIME})


def ps() -> bytes:
    """GET /api/ps: which models sit in a backend's memory is the backend's own affair;
    none listed is a valid answer for the `ollama` client and Open WebUI."""
    return b'{"models":[]}'


def version() -> bytes:
    return _encode({"version": API_VERSION})
