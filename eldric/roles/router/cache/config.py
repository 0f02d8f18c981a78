"""The router's `cache_aware` section (strict Struct; flags derived from its fields).

The strategy's knobs carry the names and defaults of SGLang's router (cache_threshold,
balance_abs_threshold, balance_rel_threshold), so its users find the same contract.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from eldric.config import Ms, flag_meta
from eldric.wire.cluster import BasicStrategy

# An HTTP header name (RFC 9110 token); "user" names the body's `user` field instead.
_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


class CacheAwareConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Cache- and session-aware routing: the prefix tree per model and session affinity."""

    cache_threshold: Annotated[float, msgspec.Meta(ge=0, le=1), flag_meta(
        "cache_aware: the prompt's prefix match rate above which its best-matching worker "
        "gets it (else the fallback strategy)", flag="cache-threshold")] = 0.3
    balance_abs_threshold: Annotated[int, msgspec.Meta(ge=0), flag_meta(
        "cache_aware: load is imbalanced when the busiest worker has more than this many "
        "requests in flight beyond the idlest ...", flag="balance-abs-threshold")] = 64
    balance_rel_threshold: Annotated[float, msgspec.Meta(ge=1), flag_meta(
        "... and more than this times the idlest's; then the least loaded gets it",
        flag="balance-rel-threshold")] = 1.5
    fallback_strategy: Annotated[BasicStrategy, flag_meta(
        "cache_aware: who decides on a miss or an imbalance",
        flag="cache-fallback-strategy")] = "least_connections"
    tree_max_chars: Annotated[int, msgspec.Meta(ge=1024), flag_meta(
        "cache_aware: prompt characters the prefix tree keeps per worker and model; the "
        "least recently used are evicted beyond it", flag="cache-tree-max-chars")] = 1 << 22
    eviction_interval_ms: Annotated[Ms, flag_meta(
        "how often the prefix trees are cut back and expired sessions dropped, ms",
        flag="cache-eviction-interval")] = 60_000
    prompt_max_chars: Annotated[int, msgspec.Meta(ge=64), flag_meta(
        "cache_aware: characters of a prompt (system first) matched and remembered",
        flag="cache-prompt-max-chars")] = 100_000
    session_key: Annotated[Annotated[str, msgspec.Meta(pattern=_TOKEN)] | None, flag_meta(
        "session affinity: a header naming the session (e.g. X-Session-ID), or `user` "
        "for the body's user field; off when unset", flag="session-key")] = None
    session_ttl_ms: Annotated[Ms, flag_meta(
        "a session unseen this long forgets its worker, ms", flag="session-ttl")] = 1_800_000
    max_sessions: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "sessions remembered at once; the least recently seen go first",
        flag="max-sessions")] = 100_000
