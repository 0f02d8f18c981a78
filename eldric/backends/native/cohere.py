"""Cohere's own v2 API as a native kind: chat (streamed, tools), embed, rerank, and its
model list. The translation is eldric.wire.native.cohere / cohere_ops; Cohere's
OpenAI-compatible endpoint is the preset ``cohere-openai`` instead (no rerank there).
https://docs.cohere.com/reference/about
"""

from __future__ import annotations

from eldric.backends.auth import bearer
from eldric.backends.egress import Adapter, Outbound, Reach
from eldric.backends.table import CHAT, EMBEDDINGS, RERANK, BackendDef
from eldric.wire.native import cohere, cohere_ops


def _models(reach: Reach) -> Outbound:
    # One page of up to 1000 (the API's most), every endpoint's models: chat, embed and
    # rerank models are all routed by name.
    return Outbound("/v1/models", method="GET", query="page_size=1000", framing="json",
                    headers={"Accept": "application/json"})


ADAPTERS = {"cohere": Adapter(
    name="cohere",
    ops={CHAT: cohere.ChatEgress, EMBEDDINGS: cohere_ops.EmbedEgress,
         RERANK: cohere_ops.RerankEgress},
    sign=bearer, models=_models, parse_models=cohere_ops.models_of, tools="native",
    option_keys=frozenset({"input_type", "truncate"}))}

ROWS = [BackendDef(
    "cohere", "Cohere (v2 chat, embed, rerank)", "cohere", "https://api.cohere.com", "cloud",
    auth="bearer", key_env="CO_API_KEY", models="/v1/models", paths=(CHAT, EMBEDDINGS, RERANK),
    tools="native", vision=None, embeddings=True, rerank=True,
    docs="https://docs.cohere.com/reference/chat",
    tested="fake (tests/fakes/cohere.py), cloud and worker roles",
    note="options.input_type for /v1/embeddings (default search_document); citations "
         "are dropped")]
