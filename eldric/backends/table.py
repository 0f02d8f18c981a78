"""The one table of backend kinds eldric knows: a row per kind.

A row says what `eldric backends` shows and what both roles need to reach the kind:
its default URL, how its key is sent, its model list, the OpenAI paths it serves, and
what it can do (tools natively or emulated in XML, vision, embeddings, rerank). The
worker's KINDS (roles/worker/backends.py) and the cloud role's provider names and types
(roles/cloud/providers.py, kinds.py) are derived from these rows, and README's backend
table is checked against them (tests/backends/test_table.py), so a kind is added in one
place.

Rows of OpenAI-compatible presets are in ``presets.py``; a native API's rows sit beside
its adapter in ``native/<api>.py`` (found by listing that package).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from eldric.backends.egress import Adapter

# How a kind's key travels (eldric.backends.auth has one Signer per scheme):
# bearer (Authorization: Bearer KEY), x-api-key, api-key (Azure), goog-api-key
# (x-goog-api-key), token (Authorization: Token KEY), sigv4 (AWS, botocore), google
# (a service account's OAuth token, google-auth), none.
Auth = Literal["none", "bearer", "x-api-key", "api-key", "goog-api-key", "token", "sigv4",
               "google"]

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
RERANK = "/v1/rerank"


@dataclass(frozen=True)
class BackendDef:
    name: str  # --backend NAME (worker), a name or `type` in --backends (cloud)
    label: str  # what it is: "NVIDIA NIM", "Google Gemini (generateContent)"
    api: str  # "openai": relayed through the zero-copy core; else an Adapter's name
    # The default base URL. For api "openai" the part before /chat/completions
    # (http://127.0.0.1:8000/v1, https://api.groq.com/openai/v1); for a native API the
    # root its adapter's paths are below. None: it must be given (an Azure endpoint).
    url: str | None
    where: Literal["local", "cloud"]  # runs on the team's own hosts, or a provider's
    auth: Auth = "bearer"
    key_env: str | None = None  # where its key usually lives (GROQ_API_KEY)
    models: str | None = "/models"  # the model list below `url` (api "openai"); None: none
    # The OpenAI paths it serves natively (an entry covers the paths below it); None: any
    paths: tuple[str, ...] | None = (CHAT, COMPLETIONS)
    tools: Literal["native", "xml"] = "native"  # native tool calls, or eldric's XML emulation
    vision: bool | None = None  # image parts taken (True), refused 400 (False), unknown (None)
    embeddings: bool = False
    rerank: bool = False
    streaming: bool = True
    available: bool = True  # False: no public server API exists (listed, cannot be started)
    docs: str = ""  # where its API is documented
    tested: str = ""  # how eldric's tests reach it: "fake (tests/fakes/gemini.py)", "real …"
    note: str = ""  # anything an operator must know (its port flag, a required option)


@cache
def _native() -> tuple[dict[str, Adapter], tuple[BackendDef, ...]]:
    """Every module of eldric.backends.native: its ADAPTERS and ROWS."""
    from eldric.backends import native

    adapters: dict[str, Adapter] = {}
    rows: list[BackendDef] = []
    for info in sorted(pkgutil.iter_modules(native.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{native.__name__}.{info.name}")
        adapters.update(getattr(mod, "ADAPTERS", {}))
        rows.extend(getattr(mod, "ROWS", []))
    return adapters, tuple(rows)


@cache
def rows() -> dict[str, BackendDef]:
    """Every kind by name: the presets, then the native APIs' rows."""
    from eldric.backends.presets import PRESETS

    out: dict[str, BackendDef] = {}
    for row in (*PRESETS, *_native()[1]):
        if row.name in out:
            raise RuntimeError(f"backend kind {row.name!r} is defined twice")
        out[row.name] = row
    return out


def adapters() -> dict[str, Adapter]:
    """Every native API's Adapter by name (a row's `api`)."""
    return _native()[0]


def adapter_of(row: BackendDef) -> Adapter | None:
    """The row's native adapter; None for an OpenAI-compatible kind."""
    return None if row.api == "openai" else adapters()[row.api]
