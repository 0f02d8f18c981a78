"""Google's Gemini API (generateContent), natively: chat (streamed too, tools, images) and
embeddings (batchEmbedContents), the key in ``x-goog-api-key``.

The translation is eldric/wire/native/gemini.py; this module is its Adapter and table row.
Model list: ``GET /v1beta/models?pageSize=1000`` (https://ai.google.dev/api/models#method:
-models.list; 1000 is the page size's maximum, so one page holds Google's whole list and
nextPageToken is not followed). Gemini's OpenAI-compatible endpoint is the preset
``gemini-openai``; this kind is the native API, with what that endpoint lacks
(thought signatures kept across tool turns, safety settings, the native error codes).
"""

from __future__ import annotations

from eldric.backends.auth import goog_api_key
from eldric.backends.egress import Adapter, Context, Outbound, Reach
from eldric.backends.table import CHAT, EMBEDDINGS, BackendDef
from eldric.wire.native import gemini as wire

DOCS = "https://ai.google.dev/api/generate-content"


def chat(body: dict, ctx: Context) -> wire.Chat:
    return wire.Chat(body, ctx, wire.model_path(ctx.model))


def embed(body: dict, ctx: Context) -> wire.Embed:
    path = wire.model_path(ctx.model)
    return wire.Embed(body, ctx, path, path.removeprefix("/v1beta/"))


def _models(reach: Reach) -> Outbound:
    return Outbound("/v1beta/models", method="GET", query="pageSize=1000")


ADAPTERS = {"gemini": Adapter(
    name="gemini", ops={CHAT: chat, EMBEDDINGS: embed}, sign=goog_api_key, models=_models,
    parse_models=wire.model_names, tools="native", vision=True)}

ROWS = [BackendDef(
    "gemini", "Google Gemini API (generateContent)", "gemini",
    "https://generativelanguage.googleapis.com", "cloud", auth="goog-api-key",
    key_env="GEMINI_API_KEY", models="/v1beta/models", paths=(CHAT, EMBEDDINGS),
    tools="native", vision=True, embeddings=True, docs=DOCS,
    tested="fake (tests/fakes/gemini.py)",
    note="native API; the OpenAI-compatible endpoint is gemini-openai")]
