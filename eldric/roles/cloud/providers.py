"""Known cloud providers: what a bare name in --backends means (its type, a kinds.py
PROVIDER_KINDS entry, its default URL and where its key usually lives)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    type: str  # a PROVIDER_KINDS key: how eldric speaks to it
    url: str  # default base URL (for OpenAI-compatible ones, the part before /chat/completions)
    env: str | None  # where its API key usually lives


KNOWN: dict[str, Provider] = {
    "openai": Provider("openai_compatible", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "anthropic": Provider("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
    "xai": Provider("openai_compatible", "https://api.x.ai/v1", "XAI_API_KEY"),
    "deepseek": Provider("openai_compatible", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "groq": Provider("openai_compatible", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together": Provider("openai_compatible", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "fireworks": Provider("openai_compatible", "https://api.fireworks.ai/inference/v1",
                          "FIREWORKS_API_KEY"),
    "mistral": Provider("openai_compatible", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "gemini": Provider("openai_compatible",
                       "https://generativelanguage.googleapis.com/v1beta/openai", "GEMINI_API_KEY"),
    "cohere": Provider("openai_compatible", "https://api.cohere.ai/compatibility/v1",
                       "COHERE_API_KEY"),
    "ollama": Provider("ollama", "http://127.0.0.1:11434", None),
}


def _native_rows() -> dict[str, Provider]:
    """Each native API's table rows (eldric.backends.table): `--backends gemini:URL:KEY`
    means the kind of its adapter."""
    from eldric.backends.table import rows

    return {r.name: Provider(r.api, r.url or "", r.key_env) for r in rows().values()
            if r.api != "openai" and r.name not in KNOWN}


KNOWN.update(_native_rows())


def known(name: str) -> Provider | None:
    """`ollama`, `ollama-remote`, `ollama2` all mean an Ollama."""
    if name in KNOWN:
        return KNOWN[name]
    if name.startswith("ollama"):
        return KNOWN["ollama"]
    return None


def providers_with_keys(env: dict[str, str] | None = None) -> list[str]:
    """Known providers whose API key variable is set (OPENAI_API_KEY, …)."""
    import os

    env = dict(os.environ) if env is None else env
    return [name for name, p in KNOWN.items() if p.env and env.get(p.env)]
