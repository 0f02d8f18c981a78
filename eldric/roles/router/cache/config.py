"""The router's `cache_aware` section (strict Struct; flags derived from its fields)."""

from __future__ import annotations

import msgspec


class CacheAwareConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Cache- and session-aware routing: the prefix tree per model and session affinity."""
