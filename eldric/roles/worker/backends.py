"""The local backends a worker can front: their usual URLs and how to list their models."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import msgspec

from eldric.backends.table import BackendDef, adapter_of, rows
from eldric.wire.ollama import Tags
from eldric.wire.openai import UpstreamModelList

if TYPE_CHECKING:
    from eldric.backends.egress import Adapter


# The API paths each kind serves natively come from its row in the one table
# (eldric/backends/presets.py, from its own documentation; an entry covers the paths
# under it: /v1/responses covers /v1/responses/{id}). The worker advertises them in
# /health so routers send a path only where it is served; `--paths` overrides them for a
# server version that differs. None: whatever the client asks (OpenAI itself).
_LLAMACPP = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
             "/v1/messages", "/v1/rerank")


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
    # Tool calls in its chat (native), or emulated by eldric (eldric.wire.xmltools): the
    # embedded llama.cpp runs the model's own template, and SmolLM2's has no tools (its
    # /props: chat_template_caps.supports_tools false), so llama.cpp drops them unsaid.
    tools: Literal["native", "xml"] = "native"
    # It continues a last assistant message instead of starting a new one (llama.cpp's
    # server does by default), so the emulation can start a forced tool call for it.
    prefills: bool = False
    # Image parts: taken (True), refused 400 vision_unsupported (False), not known (None:
    # sent, the model decides); --vision-models and --no-vision narrow it per worker.
    vision: bool | None = None
    # It takes http(s) image URLs (else the worker fetches them into data: URLs first:
    # Ollama's OpenAI API takes base64 data only).
    image_urls: bool = True
    # A native API (eldric.backends.table's rows with one): its requests go through the
    # adapter (eldric.backends.call.send), its probe is the adapter's (call.probe).
    adapter: Adapter | None = None


def _kind(row: BackendDef) -> BackendKind:
    """An OpenAI-compatible row as the worker fronts it: its root URL (the worker adds
    /v1/… itself) and the model list below that root."""
    url = row.url or ""
    root = base_url(url)
    return BackendKind(root, url[len(root):] + (row.models or "/models"), row.paths,
                       tools=row.tools)


# What the table cannot say: Ollama's list is its native /api/tags at the root (and its
# OpenAI API takes no image URLs), vLLM's /tokenize counts chats.
_WORKER_ONLY = {
    "ollama": {"models_path": "/api/tags", "native_tags": True,
               "lacks": ("/v1/messages/count_tokens",), "image_urls": False},
    "vllm": {"tokenizes_chats": True},
    # llama.cpp's server continues a last assistant message (XML tools' forced call)
    "llamacpp": {"prefills": True},
}


def _kinds() -> dict[str, BackendKind]:
    """Every local OpenAI-compatible row of the table, OpenAI itself, a kind per native
    row (the OpenAI paths its adapter translates), and the two the worker runs
    in-process."""
    out = {}
    for name, row in rows().items():
        if not row.available:
            continue
        if row.api == "openai" and (row.where == "local" or name == "openai"):
            out[name] = replace(_kind(row), vision=row.vision,
                                **_WORKER_ONLY.get(name, {}))  # type: ignore[arg-type]
        elif (adapter := adapter_of(row)) is not None:
            # images: call.send refuses or fetches them as the adapter says
            out[name] = BackendKind(row.url or "", "", tuple(adapter.ops), adapter=adapter,
                                    tools=adapter.tools,
                                    vision=row.vision if row.vision is not None
                                    else adapter.vision)
    # llama.cpp in-process on a private port: what its server serves, embeddings only
    # when the worker turns them on; no vision: without a multimodal projector (eldric
    # loads none) llama.cpp answers images with a 500.
    out["embedded"] = BackendKind("", "/v1/models", _LLAMACPP, tools="xml", prefills=True,
                                  vision=False)
    out["mock"] = BackendKind("", "/v1/models", _LLAMACPP[:3])  # in-process, private port
    return out


def unavailable(name: str) -> BackendDef | None:
    """A kind the table lists with no public server API (lcm): --backend refuses it."""
    row = rows().get(name)
    return row if row is not None and not row.available else None


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


# --backend NAME -> how to front it (WorkerConfig.backend's choices are these names).
KINDS: dict[str, BackendKind] = _kinds()
