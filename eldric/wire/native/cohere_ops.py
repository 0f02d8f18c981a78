"""Cohere's v2 Embed and Rerank APIs <-> OpenAI's /v1/embeddings and the /v1/rerank
(Cohere/Jina) shape: the pure translation, both ways (no I/O). Neither streams.

Embed (https://docs.cohere.com/reference/embed): ``POST /v2/embed`` ``{model, texts,
input_type, embedding_types: ["float"], output_dimension}`` -> ``{id, embeddings: {float:
[[…]]}, texts, meta: {billed_units: {input_tokens}}}``. ``input_type`` is required by
Cohere and has no OpenAI twin: the backend's ``input_type`` option, else
``search_document``. OpenAI's ``encoding_format: base64`` (what the openai SDK asks for by
default) is float32 little-endian bytes, base64-encoded, made here from the floats.

Rerank (https://docs.cohere.com/reference/rerank): ``POST /v2/rerank`` ``{model, query,
documents: [str], top_n, max_tokens_per_doc}`` -> ``{id, results: [{index,
relevance_score}], meta: {billed_units: {search_units}}}``. eldric's /v1/rerank takes
Cohere's or Jina's request (documents as strings or ``{"text": …}`` objects,
``return_documents``) and answers ``{id, model, results: [{index, relevance_score,
document: {text}}], meta, usage}`` — Jina's and vLLM's reply, which Cohere's clients also
read (v2 returns no documents; eldric adds them from the request unless
``return_documents`` is false).
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.wire.native.outbound import Context, Outbound
from eldric.errors import BadRequest
from eldric.wire.native import cohere, embed

_encode = msgspec.json.encode

_JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def _model(body: dict, ctx: Context) -> str:
    """The backend's name for the model, else the body's (a worker relays some paths
    without reading their model)."""
    model = ctx.model or body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model must be a non-empty string", param="model")
    return model


class _Whole:
    """What a non-streaming op shares: no stream, no second request, Cohere's errors."""

    stream = False
    done = False
    usage: tuple[int, int] | None = None

    def feed(self, frame: bytes) -> list[bytes]:
        return []

    def finish(self) -> list[bytes]:
        return []

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        return cohere.error(status, raw)

    def follow(self, raw: bytes) -> Outbound | None:
        return None


class EmbedEgress(_Whole):
    """One /v1/embeddings request to /v2/embed."""

    def __init__(self, body: dict, ctx: Context):
        req = embed.read(body)
        self.base64 = req.base64
        self.model = _model(body, ctx)
        native: dict[str, Any] = {
            "model": self.model, "texts": req.texts, "embedding_types": ["float"],
            "input_type": body.get("input_type") or ctx.options.get("input_type")
            or "search_document"}
        if req.dimensions is not None:
            native["output_dimension"] = req.dimensions
        if ctx.options.get("truncate"):
            native["truncate"] = ctx.options["truncate"]
        self._native = native

    def outbound(self) -> Outbound:
        return Outbound("/v2/embed", _encode(self._native), headers=dict(_JSON), framing="json")

    def whole(self, raw: bytes) -> bytes:
        reply = cohere.reply_of(raw, "embed")
        vectors = (reply.get("embeddings") or {}).get("float") \
            if isinstance(reply.get("embeddings"), dict) else None
        if not isinstance(vectors, list):
            raise ValueError("Cohere's embed reply has no float embeddings")
        if not all(isinstance(vec, list) for vec in vectors):
            raise ValueError("Cohere's embed reply holds an embedding that is not an array")
        meta = reply.get("meta") if isinstance(reply.get("meta"), dict) else {}
        prompt = int((meta.get("billed_units") or {}).get("input_tokens") or 0)
        self.usage = (prompt, 0)
        return embed.reply(vectors, self.model, prompt, self.base64)


def _document(doc: Any, i: int) -> str:
    if isinstance(doc, str):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
        return doc["text"]
    raise BadRequest("each document must be a string or {\"text\": …}",
                     param=f"documents[{i}]")


class RerankEgress(_Whole):
    """One /v1/rerank request to /v2/rerank."""

    def __init__(self, body: dict, ctx: Context):
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        query = body.get("query")
        if not isinstance(query, str) or not query:
            raise BadRequest("query must be a non-empty string", param="query")
        docs = body.get("documents")
        if not isinstance(docs, list) or not docs:
            raise BadRequest("documents must be a non-empty array", param="documents")
        self.documents = [_document(d, i) for i, d in enumerate(docs)]
        self.model = _model(body, ctx)
        self.return_documents = body.get("return_documents") is not False
        native: dict[str, Any] = {"model": self.model, "query": query,
                                  "documents": self.documents}
        for key in ("top_n", "max_tokens_per_doc"):
            v = body.get(key)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise BadRequest(f"{key} must be a positive integer", param=key)
                native[key] = v
        self._native = native

    def outbound(self) -> Outbound:
        return Outbound("/v2/rerank", _encode(self._native), headers=dict(_JSON), framing="json")

    def whole(self, raw: bytes) -> bytes:
        reply = cohere.reply_of(raw, "rerank")
        results = reply.get("results")
        if not isinstance(results, list):
            raise ValueError("Cohere's rerank reply has no results")
        out = []
        for r in results:
            index = r.get("index") if isinstance(r, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(self.documents) \
                    or not isinstance(r.get("relevance_score"), (int, float)):
                raise ValueError("Cohere's rerank reply holds a result without a valid "
                                 "index and relevance_score")
            item: dict[str, Any] = {"index": index, "relevance_score": r["relevance_score"]}
            if self.return_documents:
                item["document"] = {"text": self.documents[index]}
            out.append(item)
        reply_out: dict[str, Any] = {"id": reply.get("id"), "model": self.model, "results": out}
        meta = reply.get("meta")
        if isinstance(meta, dict):
            reply_out["meta"] = meta
            tokens = (meta.get("tokens") or {}).get("input_tokens") \
                if isinstance(meta.get("tokens"), dict) else None
            if tokens is not None:
                self.usage = (int(tokens), 0)
                reply_out["usage"] = {"total_tokens": int(tokens)}
        return _encode(reply_out)


def models_of(raw: bytes) -> list[str]:
    """``GET /v1/models`` (https://docs.cohere.com/reference/list-models): ``{models:
    [{name, endpoints, …}], next_page_token}`` -> the names."""
    reply = cohere.reply_of(raw, "model list")
    models = reply.get("models")
    if not isinstance(models, list):
        raise ValueError("Cohere's model list has no models")
    return [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]
