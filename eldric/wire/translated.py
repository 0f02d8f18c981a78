"""The client API paths eldric translates where a backend lacks them, and how.

Every worker-like role serves each of these paths: passed through where its backend
serves it natively, translated (eldric.wire.translate) where it does not; routers and the
edge route and relay them like the other inference paths. A new client API is one entry.
"""

from __future__ import annotations

from eldric.wire import anthropic, ollama_chat, ollama_embed, responses
from eldric.wire.cluster import covers
from eldric.wire.translate import Translation

TRANSLATED: dict[str, Translation] = {
    "/v1/messages": Translation(anthropic.messages),  # Anthropic's Messages API
    "/v1/responses": Translation(responses.translator),  # OpenAI's Responses API
    # Ollama's native API (eldric.wire.ollama_chat, ollama_embed)
    "/api/chat": Translation(ollama_chat.chat),
    "/api/generate": Translation(ollama_chat.generate),
    "/api/embed": Translation(ollama_embed.embed, needs="/v1/embeddings"),
    "/api/embeddings": Translation(ollama_embed.embeddings, needs="/v1/embeddings"),
}


def translatable(native: list[str] | tuple[str, ...]) -> list[str]:
    """The paths above that a backend serving `native` serves by translation: those it
    lacks natively but whose translation's target it serves (WorkerHealth.translated)."""
    return [p for p, tr in TRANSLATED.items()
            if not covers(native, p) and covers(native, tr.needs)]
