"""OpenAI API shapes eldric reads or writes (requests are only ever partly decoded)."""

from __future__ import annotations

import msgspec


class Head(msgspec.Struct, kw_only=True):
    """The two fields routing needs. Unknown fields are skipped, not decoded."""

    model: str | None = None
    stream: bool = False


_head = msgspec.json.Decoder(Head)


def model_of(body: bytes) -> str | None:
    """The model a body names, if it is JSON naming one (a body that is not, an audio
    upload, names none): for routing and metrics, never a refusal."""
    if not body:
        return None
    try:
        return _head.decode(body).model
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None


class ModelHead(Head):
    model: str  # type: ignore[assignment]  # required on the inference endpoints


class ChatHead(ModelHead):
    # list[Raw] checks "an array" without decoding the messages themselves.
    messages: list[msgspec.Raw]


class CompletionHead(ModelHead):
    prompt: msgspec.Raw


class EmbeddingHead(ModelHead):
    input: msgspec.Raw


class RerankHead(Head):
    """/v1/rerank, the shape Jina, Cohere (v1/v2), vLLM, llama.cpp and LocalAI share:
    ``{"model", "query", "documents": [str | {"text"}], "top_n"?, "return_documents"?}``
    answered ``{"results": [{"index", "relevance_score", "document"?}], "usage"?}``
    (https://jina.ai/reranker/, https://docs.cohere.com/reference/rerank,
    https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html#re-rank-api).
    The model may be left out (vLLM serves one): it is routed to any worker serving the
    path; the rest of the body is the backend's to check."""


# The request head each inference path is checked against before it is forwarded.
HEAD_BY_PATH: dict[str, type[Head]] = {
    "/v1/chat/completions": ChatHead,
    "/v1/completions": CompletionHead,
    "/v1/embeddings": EmbeddingHead,
    "/v1/rerank": RerankHead,
}


class Model(msgspec.Struct):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "eldric"


class ModelList(msgspec.Struct):
    data: list[Model]
    object: str = "list"


class UpstreamModel(msgspec.Struct):
    """One entry of an upstream's /v1/models (only the id matters to eldric)."""

    id: str


class UpstreamModelList(msgspec.Struct):
    data: list[UpstreamModel] = []
