"""The local backends a worker can front: their usual URLs and how to list their models."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from eldric.wire.ollama import Tags
from eldric.wire.openai import UpstreamModelList


@dataclass(frozen=True)
class BackendKind:
    default_url: str
    models_path: str  # where the model list lives
    native_tags: bool = False  # Ollama's /api/tags instead of OpenAI's /v1/models


KINDS: dict[str, BackendKind] = {
    "ollama": BackendKind("http://127.0.0.1:11434", "/api/tags", native_tags=True),
    "vllm": BackendKind("http://127.0.0.1:8000", "/v1/models"),
    "llamacpp": BackendKind("http://127.0.0.1:8080", "/v1/models"),
    "tgi": BackendKind("http://127.0.0.1:8080", "/v1/models"),
    "localai": BackendKind("http://127.0.0.1:8080", "/v1/models"),
    "lmdeploy": BackendKind("http://127.0.0.1:23333", "/v1/models"),
    "mlc": BackendKind("http://127.0.0.1:8080", "/v1/models"),
    "openai": BackendKind("https://api.openai.com", "/v1/models"),
    "embedded": BackendKind("", "/v1/models"),  # llama.cpp in-process, private port
    "mock": BackendKind("", "/v1/models"),  # started in-process on a private port
}


def base_url(url: str) -> str:
    """Normalise a backend URL to scheme://host:port[/prefix] without a trailing /v1:
    eldric appends the /v1/... path of each request itself."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def parse_models(kind: BackendKind, body: bytes) -> list[str]:
    if kind.native_tags:
        return [t.name for t in msgspec.json.decode(body, type=Tags).models]
    return [m.id for m in msgspec.json.decode(body, type=UpstreamModelList).data]
