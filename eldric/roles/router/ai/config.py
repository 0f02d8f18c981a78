"""The router's `ai_routing` section (strict Struct; flags derived from its fields)."""

from __future__ import annotations

import msgspec


class AiRoutingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """AI routing: an LLM picks the worker (modes none / advisory / autonomous)."""
