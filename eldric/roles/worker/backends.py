"""The local backends a worker can front: their usual URLs and how to list their models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from eldric.backends.table import adapter_of, rows
from eldric.wire.ollama import Tags
from eldric.wire.openai import UpstreamModelList

if TYPE_CHECKING:
    from eldric.backends.egress import Adapter


# The API paths each kind serves natively, from its own documentation (an entry covers
# the paths under it: /v1/responses covers /v1/responses/{id}). The worker advertises
# them in /health so routers send a path only where it is served; `--paths` overrides
# them for a server version that differs. None: whatever the client asks (OpenAI itself).
_CORE = ("/v1/chat/completions", "/v1/completions")
_OPENAI = (*_CORE, "/v1/embeddings")
_LLAMACPP = (*_OPENAI, "/v1/responses", "/v1/messages", "/v1/rerank")


@dataclass(frozen=True)
class BackendKind:
    default_url: str
    models_path: str  # where the model list lives
    paths: tuple[str, ...] | None  # the API paths it serves natively (see above)
    native_tags: bool = False  # Ollama's /api/tags instead of OpenAI's /v1/models
    # Paths under a family in `paths` it does not serve (Ollama's /v1/messages has no
    # count_tokens): answered by the worker instead.
    lacks: tuple[str, ...] = ()
    # Its /tokenize applies the chat template to messages (vLLM's), so count_tokens where
    # /v1/messages is not native is a real count, not an estimate.
    tokenizes_chats: bool = False
    # Image parts: taken (True), refused 400 vision_unsupported (False), not known (None:
    # sent, the model decides); --vision-models and --no-vision narrow it per worker.
    vision: bool | None = None
    # It takes http(s) image URLs (else the worker fetches them into data: URLs first:
    # Ollama's OpenAI API takes base64 data only).
    image_urls: bool = True
    # A native API (eldric.backends.table's rows with one): its requests go through the
    # adapter (eldric.backends.call.send), its probe is the adapter's (call.probe).
    adapter: Adapter | None = None


KINDS: dict[str, BackendKind] = {
    # Ollama: /v1/responses since 0.13.3, Anthropic's /v1/messages since 0.14; its own
    # API (/api/chat, /api/show, …) relayed untouched.
    "ollama": BackendKind("http://127.0.0.1:11434", "/api/tags",
                          (*_OPENAI, "/v1/responses", "/v1/messages", "/api"),
                          native_tags=True, lacks=("/v1/messages/count_tokens",),
                          image_urls=False),
    # llama.cpp's server and vLLM serve /v1/messages/count_tokens with /v1/messages
    "vllm": BackendKind("http://127.0.0.1:8000", "/v1/models",
                        (*_LLAMACPP, "/v1/score", "/v1/audio"), tokenizes_chats=True),
    "llamacpp": BackendKind("http://127.0.0.1:8080", "/v1/models", _LLAMACPP),
    "tgi": BackendKind("http://127.0.0.1:8080", "/v1/models", _CORE),  # its Messages API
    "localai": BackendKind("http://127.0.0.1:8080", "/v1/models",
                           (*_OPENAI, "/v1/rerank", "/v1/audio", "/v1/images")),
    "lmdeploy": BackendKind("http://127.0.0.1:23333", "/v1/models", _CORE),
    "mlc": BackendKind("http://127.0.0.1:8080", "/v1/models", _CORE),
    "openai": BackendKind("https://api.openai.com", "/v1/models", None),
    # llama.cpp in-process on a private port: what its server serves, embeddings only
    # when the worker turns them on; no vision: without a multimodal projector (eldric
    # loads none) llama.cpp answers images with a 500.
    "embedded": BackendKind("", "/v1/models", _LLAMACPP, vision=False),
    "mock": BackendKind("", "/v1/models", _OPENAI),  # in-process, private port
}


def _native() -> dict[str, BackendKind]:
    """A kind per native table row: the OpenAI paths its adapter translates."""
    out = {}
    for row in rows().values():
        adapter = adapter_of(row)
        if adapter is not None and row.name not in KINDS:
            # images: call.send refuses or fetches them as the adapter says
            out[row.name] = BackendKind(row.url or "", "", tuple(adapter.ops),
                                        adapter=adapter, vision=row.vision
                                        if row.vision is not None else adapter.vision)
    return out


KINDS.update(_native())


def described() -> dict[str, dict[str, object]]:
    """KINDS as `eldric backends` shows them (Role.kinds)."""
    return {name: {"default_url": k.default_url or None,
                   "paths": list(k.paths) if k.paths is not None else None,
                   "models": k.models_path}
            for name, k in KINDS.items()}


def base_url(url: str) -> str:
    """Normalise a backend URL to scheme://host:port[/prefix] without a trailing /v1:
    eldric appends the /v1/... path of each request itself."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def parse_models(kind: BackendKind, body: bytes) -> list[str]:
    if kind.native_tags:
        return [t.name for t in msgspec.json.decode(body, type=Tags).models]
    return [m.id for m in msgspec.json.decode(body, type=UpstreamModelList).data]
