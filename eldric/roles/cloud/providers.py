"""Known cloud providers: what a bare name in --backends means (its type, a kinds.py
PROVIDER_KINDS entry, its default URL and where its key usually lives), derived from
the one table of backend kinds (eldric/backends/table.py), so a kind is added there."""

from __future__ import annotations

from dataclasses import dataclass

from eldric.backends.table import rows


@dataclass(frozen=True)
class Provider:
    type: str  # a PROVIDER_KINDS key: how eldric speaks to it
    url: str  # default base URL (for OpenAI-compatible ones, the part before /chat/completions)
    env: str | None  # where its API key usually lives


def _from_table() -> dict[str, Provider]:
    """Every available row of the one table (eldric/backends/presets.py, native/): an
    OpenAI-compatible one is spoken to as `openai_compatible`, a native one by its
    adapter's kind (kinds.py has one per adapter). A row whose URL must be given (an
    Azure ML endpoint) has none here: make_backend then asks for it."""
    return {name: Provider("openai_compatible" if row.api == "openai" else row.api,
                           row.url or "", row.key_env)
            for name, row in rows().items() if row.available}


KNOWN: dict[str, Provider] = _from_table()
# Ollama is its own kind here (its /api/tags list, its root URL), not the /v1 preset.
KNOWN["ollama"] = Provider("ollama", "http://127.0.0.1:11434", None)


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
    return [name for name, p in KNOWN.items() if p.env and p.url and env.get(p.env)]
