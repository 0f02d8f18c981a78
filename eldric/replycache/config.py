"""The response cache's settings: file section "cache" of the edge and of the router;
flags --cache, --cache-…. One Struct for both roles, so a farm's edges and routers mean
the same by the same words.

The semantic threshold's flag is --cache-similarity, not --cache-threshold: the router's
cache-aware routing (roles/router/cache/config.py) had that name first."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from eldric.config import Ms
from eldric.fields import flag_meta


class CacheConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    mode: Annotated[Literal["off", "exact", "semantic"], flag_meta(
        "the response cache: off (nothing on the request path), exact (a repeated "
        "deterministic chat/completions request answered from the store), semantic (and "
        "else the nearest earlier question by embedding similarity)", flag="cache")] = "off"
    store: Annotated[Literal["memory", "redis"], flag_meta(
        "where cached replies live: memory (this process, a bounded LRU) or redis (shared "
        "by a farm)", flag="cache-store")] = "memory"
    redis_url: Annotated[str | None, flag_meta(
        "Redis for --cache-store redis (the edge: its --redis-url when not given)",
        flag="cache-redis-url")] = None
    ttl_ms: Annotated[Ms, flag_meta(
        "how long a cached reply is served, ms", flag="cache-ttl")] = 3_600_000
    max_entries: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "memory store: most replies kept (least recently used evicted)",
        flag="cache-max-entries")] = 10_000
    max_bytes: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "memory store: most bytes of replies kept (least recently used evicted)",
        flag="cache-max-bytes")] = 256 << 20
    max_entry_bytes: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "a reply larger than this is not cached, bytes",
        flag="cache-max-entry-bytes")] = 1 << 20
    models: Annotated[list[str], flag_meta(
        "models whose replies are cached (fnmatch patterns); empty: every model",
        flag="cache-models")] = []
    shared: Annotated[bool, flag_meta(
        "share cached replies across API keys (off: each key sees only its own)",
        flag="cache-shared")] = False
    nondeterministic: Annotated[bool, flag_meta(
        "cache sampled requests too (temperature > 0 and no seed); off: only "
        "deterministic ones", flag="cache-nondeterministic")] = False
    embedding_model: Annotated[str | None, flag_meta(
        "--cache semantic: the /v1/embeddings model (reached through this role's "
        "upstreams) that embeds the last user turn", flag="cache-embedding-model")] = None
    similarity: Annotated[float, msgspec.Meta(ge=0, le=1), flag_meta(
        "--cache semantic: the cosine similarity above which an earlier question's reply "
        "is served", flag="cache-similarity")] = 0.95
    max_turns: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "--cache semantic: conversations with more user turns than this are matched "
        "exactly only (a last turn alone no longer says what was asked)",
        flag="cache-max-turns")] = 1

    @property
    def on(self) -> bool:
        return self.mode != "off"
