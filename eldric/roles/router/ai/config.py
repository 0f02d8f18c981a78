"""The router's `ai_routing` section (strict Struct; flags derived from its fields)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from eldric.config import Ms, flag_meta

Mode = Literal["none", "advisory", "autonomous"]
MODES: tuple[str, ...] = Mode.__args__  # type: ignore[attr-defined]


class AiRoutingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """AI routing: an LLM picks the worker (modes none / advisory / autonomous)."""

    mode: Annotated[Mode, flag_meta(
        "none: algorithmic only; advisory: the LLM's pick is logged and counted, the "
        "strategy routes; autonomous: the LLM's pick goes first", flag="ai-mode")] = "none"
    llm_model: Annotated[str | None, flag_meta(
        "the model that decides (e.g. llama3.2:3b)", flag="ai-model")] = None
    # Any OpenAI-compatible endpoint (Ollama, the cluster's own router, an embedded
    # worker); ollama_url is the product description's name for the same thing.
    llm_url: Annotated[str | None, flag_meta(
        "OpenAI-compatible base URL of the deciding model (…/v1/chat/completions is "
        "called)", flag="ai-url")] = None
    ollama_url: Annotated[str | None, flag_meta(
        "the same as --ai-url (the description's name): e.g. http://localhost:11434",
        flag="ollama-url")] = None
    llm_api_key: Annotated[str | None, flag_meta(
        "bearer key for the deciding model's endpoint, if it wants one",
        flag="ai-api-key")] = None
    timeout_ms: Annotated[Ms, flag_meta(
        "hard deadline of one decision; past it the strategy routes, ms",
        flag="ai-timeout")] = 300
    cache_size: Annotated[int, msgspec.Meta(ge=0, le=1_000_000), flag_meta(
        "recent decisions kept by request shape (0: none)", flag="ai-cache-size")] = 1024
    cache_ttl_ms: Annotated[Ms, flag_meta(
        "how long a cached decision stands, ms", flag="ai-cache-ttl")] = 5_000
    max_concurrent: Annotated[int, msgspec.Meta(ge=1, le=10_000), flag_meta(
        "decisions asked at once; more fall back at once (busy)",
        flag="ai-max-concurrent")] = 16
    digest_chars: Annotated[int, msgspec.Meta(ge=0, le=20_000), flag_meta(
        "characters of the first user turn the deciding model sees",
        flag="ai-digest-chars")] = 400

    @property
    def url(self) -> str | None:
        """The endpoint's base URL, without a trailing /v1 (either name)."""
        url = self.llm_url or self.ollama_url
        if url is None:
            return None
        url = url.rstrip("/")
        return url[:-3] if url.endswith("/v1") else url


def problem(cfg: AiRoutingConfig) -> tuple[str, str] | None:
    """What keeps these settings from working, as (field, why), or None: a mode that asks
    an LLM needs the model and the URL, and the URL's two names must agree. Refused at
    start (ConfigError) and by POST /api/v1/ai/configure (400 naming the field)."""
    if cfg.llm_url and cfg.ollama_url and cfg.llm_url.rstrip("/") != cfg.ollama_url.rstrip("/"):
        return "ollama_url", "differs from llm_url; they name the same endpoint, give one"
    url = cfg.url
    if url is not None and not url.startswith(("http://", "https://")):
        return ("llm_url" if cfg.llm_url else "ollama_url",
                f"must be an http:// or https:// URL, got {url!r}")
    if cfg.mode == "none":
        return None
    if not cfg.llm_model:
        return "llm_model", f"mode {cfg.mode} needs the deciding model (--ai-model)"
    if not url:
        return "llm_url", f"mode {cfg.mode} needs the deciding model's URL (--ai-url or --ollama-url)"
    return None
