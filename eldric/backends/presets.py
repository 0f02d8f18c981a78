"""The OpenAI-compatible kinds: one row each, relayed through the zero-copy core.

Defaults from each server's own documentation (`docs`): its usual port, how it takes a
key, where its model list lives, which OpenAI paths it serves.
"""

from __future__ import annotations

from eldric.backends.table import CHAT, COMPLETIONS, EMBEDDINGS, BackendDef

_CORE = (CHAT, COMPLETIONS)
_OPENAI = (*_CORE, EMBEDDINGS)

PRESETS: tuple[BackendDef, ...] = (
    BackendDef("vllm", "vLLM", "openai", "http://127.0.0.1:8000/v1", "local",
               paths=(*_OPENAI, "/v1/responses", "/v1/messages", "/v1/rerank", "/v1/score",
                      "/v1/audio"),
               embeddings=True, rerank=True, docs="https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html"),
    BackendDef("groq", "Groq", "openai", "https://api.groq.com/openai/v1", "cloud",
               key_env="GROQ_API_KEY", docs="https://console.groq.com/docs/openai"),
)
