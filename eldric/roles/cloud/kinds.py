"""The cloud role's backend types: one entry says all eldric needs to speak to one.

The worker does the same with its KINDS (roles/worker/backends.py). Per type: which
configured URLs it takes, the headers carrying its key, its model-list request and
parser (the list is also the health probe), the API paths it serves (a request for
another path is a 400, and /health advertises the union over the enabled backends), and
how a request reaches it: through the zero-copy core (openai_call.call, with `route`
saying where), or a translator of its own (anthropic_call.call, which relays Anthropic's
own paths through the core), or a native API's adapter (native_call: one kind per
Adapter of eldric.backends.table, its request through eldric.backends.call). Each call
also takes the client APIs translated to a path the kind serves (Responses, Ollama's
chat, on a chat path). A new type is one entry here, or a native adapter's module; a
provider name that means a type (openai, groq, …) is one line in providers.KNOWN.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from aiohttp import web

from eldric.backends.table import adapters
from eldric.roles.cloud import anthropic_call, native_call, openai_call
from eldric.roles.cloud.providers import KNOWN
from eldric.wire.anthropic_shared import ANTHROPIC_VERSION
from eldric.wire.ollama import Tags
from eldric.wire.openai import UpstreamModelList

if TYPE_CHECKING:
    from eldric.backends.egress import Adapter
    from eldric.roles.cloud.backends import Backend
    from eldric.roles.cloud.state import CloudState
    from eldric.stream.sse import Tap
    from eldric.wire.translate import Translator


class Call(Protocol):
    """(request, state, backend, the model name to send, body, decoded head) -> the reply.
    Raises UpstreamFailure before the first byte, so the handler can fail over. A
    translated client API (eldric.wire.translated) brings its translator: `body` is then
    its request (for its `upstream_path`), and the Chat Completions reply goes back
    through it; `keep` reads what the client gets (the /v1/responses store's tap)."""

    def __call__(self, request: web.Request, cs: CloudState, b: Backend, model: str,
                 body: bytes, head: Any, *, translate: Translator | None = None,
                 keep: Tap | None = None) -> Awaitable[web.StreamResponse]: ...


# (backend, path after /v1, model) -> (base URL, path, query) of a request through the core.
Route = Callable[["Backend", str, str], tuple[str, str, "str | None"]]


@dataclass(frozen=True)
class ProviderKind:
    """`auth` runs per request and does no I/O (a token that must be refreshed is kept
    fresh elsewhere and read here); signing that depends on the request itself (AWS
    SigV4) belongs in the kind's `call` and `models_request`."""

    call: Call
    paths: tuple[str, ...]  # the API paths it serves
    auth: Callable[[Backend], dict[str, str]]  # the headers that carry its key
    # The model list's URL and headers (a kind that signs requests signs this one too).
    models_request: Callable[[Backend], tuple[str, dict[str, str]]]
    parse_models: Callable[[bytes], list[str]]
    route: Route = lambda b, sub, model: (b.url, sub, None)  # noqa: E731 - as given
    root: bool = False  # it takes its root URL: a configured …/v1 is cut (eldric adds /v1/…)
    # A URL naming no API version whose /models is a 404 is tried at URL/v1 (a vLLM given
    # as http://host:8000); kept if the list is there.
    find_v1: bool = False
    # A native kind's adapter: its probe is the adapter's (eldric.backends.call.probe),
    # its auth the adapter's signer, per request (so `auth` and `models_request` are
    # not used for it).
    adapter: Adapter | None = None
    # It takes http(s) image URLs; else the cloud role fetches them into data: URLs first
    # (Ollama's OpenAI API takes base64 only; a native kind's is call.send's).
    image_urls: bool = True


def _bearer(b: Backend) -> dict[str, str]:
    return {"Authorization": f"Bearer {b.key}"} if b.key else {}


def _anthropic_auth(b: Backend) -> dict[str, str]:
    return {"anthropic-version": ANTHROPIC_VERSION, **({"x-api-key": b.key} if b.key else {})}


def _azure_auth(b: Backend) -> dict[str, str]:
    return {"api-key": b.key} if b.key else {}


def _listed_at(template: str) -> Callable[[Backend], tuple[str, dict[str, str]]]:
    """The model list at `template` ({url}, {api_version}), asked with the key's headers."""
    return lambda b: (template.format(url=b.url, api_version=b.api_version), b.auth_headers())


def _openai_models(raw: bytes) -> list[str]:
    return [m.id for m in msgspec.json.decode(raw, type=UpstreamModelList).data]


def _ollama_tags(raw: bytes) -> list[str]:
    return [t.name for t in msgspec.json.decode(raw, type=Tags).models]


_OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")

PROVIDER_KINDS: dict[str, ProviderKind] = {
    # Any server with OpenAI's API: its URL is the part before /chat/completions.
    # Its /rerank: relayed for the providers that serve one (Jina, Together, Voyage, a
    # vLLM); a model of one that does not is its own 404.
    "openai_compatible": ProviderKind(
        openai_call.call, (*_OPENAI_PATHS, "/v1/rerank"), _bearer, _listed_at("{url}/models"), _openai_models,
        find_v1=True),
    # The Messages API: its own /v1/messages (count_tokens too) relayed as they are
    # (the relay's headers are `auth`'s); chat, and so every client API translated to
    # chat, through its native adapter (backends/native/anthropic.py), which probes it.
    "anthropic": ProviderKind(
        anthropic_call.call, ("/v1/chat/completions", "/v1/messages"), _anthropic_auth,
        _listed_at("{url}/v1/models?limit=1000"), _openai_models,
        route=lambda b, sub, model: (b.url + "/v1", sub, None), root=True,
        adapter=anthropic_call.ANTHROPIC),
    # Ollama's OpenAI-compatible API under /v1; its own model list, /api/tags.
    "ollama": ProviderKind(
        openai_call.call, _OPENAI_PATHS, _bearer, _listed_at("{url}/api/tags"), _ollama_tags,
        route=lambda b, sub, model: (b.url + "/v1", sub, None), root=True, image_urls=False),
    # Azure OpenAI: the model is the deployment, in the path; the API version a query.
    "azure_openai": ProviderKind(
        openai_call.call, _OPENAI_PATHS, _azure_auth,
        _listed_at("{url}/openai/models?api-version={api_version}"), _openai_models,
        route=lambda b, sub, model: (b.url, f"/openai/deployments/{model}{sub}",
                                     f"api-version={b.api_version}")),
}


def _native(adapter: Adapter) -> ProviderKind:
    """A native API's kind: every OpenAI path its adapter has an egress for."""
    def unused(b: Backend) -> tuple[str, dict[str, str]]:
        raise AssertionError("a native kind is probed through its adapter")
    return ProviderKind(native_call.caller(adapter), tuple(adapter.ops), lambda b: {},
                        unused, lambda raw: [], root=False, adapter=adapter)


PROVIDER_KINDS.update({name: _native(a) for name, a in adapters().items()
                       if name not in PROVIDER_KINDS})


def described() -> dict[str, dict[str, object]]:
    """PROVIDER_KINDS as `eldric backends` shows them (Role.kinds): the paths each serves
    and the provider names (--backends NAME) that mean it, with their URLs and the
    variable their key usually lives in."""
    return {name: {"paths": list(k.paths),
                   "providers": {p: {"url": v.url, "key_env": v.env}
                                 for p, v in KNOWN.items() if v.type == name}}
            for name, k in PROVIDER_KINDS.items()}
