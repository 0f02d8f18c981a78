"""The router's `knowledge` section (strict Struct; flags derived from its fields)."""

from __future__ import annotations

import msgspec


class KnowledgeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Knowledge routing: the prompt's theme picks the workers tagged theme:<id>."""
