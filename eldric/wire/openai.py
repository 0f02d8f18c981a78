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


# The request head each inference path is checked against before it is forwarded.
HEAD_BY_PATH: dict[str, type[Head]] = {
    "/v1/chat/completions": ChatHead,
    "/v1/completions": CompletionHead,
    "/v1/embeddings": EmbeddingHead,
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
