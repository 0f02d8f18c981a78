"""Ollama's native API shapes eldric reads (GET /api/tags)."""

from __future__ import annotations

import msgspec


class Tag(msgspec.Struct):
    name: str
    model: str | None = None
    modified_at: str | None = None


class Tags(msgspec.Struct):
    models: list[Tag] = []
