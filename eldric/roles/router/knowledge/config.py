"""The router's `knowledge` section (strict Struct; flags derived from its fields)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from eldric.config import Ms, flag_meta


class KnowledgeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Knowledge routing: the prompt's theme picks the workers tagged theme:<id>."""

    enabled: Annotated[bool, flag_meta(
        "route on the prompt's theme: workers tagged theme:<id> take its prompts",
        flag="knowledge")] = False
    themes: Annotated[str | None, flag_meta(
        "themes file (JSON) replacing the shipped one; checked at start",
        flag="themes")] = None
    # One keyword of one theme scores 1, a two-word phrase 2; shared keywords split.
    threshold: Annotated[float, msgspec.Meta(ge=0), flag_meta(
        "least keyword score a theme needs to route (below: standard balancing)",
        flag="theme-threshold")] = 1.0
    top_k: Annotated[int, msgspec.Meta(ge=1, le=20), flag_meta(
        "themes considered, best first: the first with a tagged worker narrows",
        flag="theme-top-k")] = 3
    max_chars: Annotated[int, msgspec.Meta(ge=64, le=1 << 20), flag_meta(
        "characters of the last user turn plus system prompt that are classified",
        flag="theme-max-chars")] = 4000
    # The embedding scorer: asked only when no keyword theme reaches the threshold.
    embeddings_model: Annotated[str | None, flag_meta(
        "a /v1/embeddings model that classifies prompts the keywords miss (off: unset)",
        flag="theme-embeddings-model")] = None
    embeddings_url: Annotated[str | None, flag_meta(
        "OpenAI-compatible base URL serving --theme-embeddings-model (http://host:port)",
        flag="theme-embeddings-url")] = None
    embeddings_api_key: Annotated[str | None, flag_meta(
        "bearer key for --theme-embeddings-url", flag="theme-embeddings-api-key")] = None
    embeddings_threshold: Annotated[float, msgspec.Meta(ge=-1, le=1), flag_meta(
        "least cosine similarity to a theme's centroid that routes",
        flag="theme-embeddings-threshold")] = 0.5
    embeddings_timeout_ms: Annotated[Ms, flag_meta(
        "how long one embeddings call may take before the request routes without it, ms",
        flag="theme-embeddings-timeout")] = 250
