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

import msgspec

from eldric.backends.auth import goog_api_key
from eldric.backends.egress import Adapter, Context, Outbound, Reach
from eldric.backends.table import CHAT, EMBEDDINGS, BackendDef
from eldric.stream.upstream_errors import normalise
from eldric.wire.native import chat_in
from eldric.wire.native import gemini as wire

DOCS = "https://ai.google.dev/api/generate-content"


class Chat:
    """One chat request to a generateContent API (the Gemini API's, or Vertex's Gemini
    models under `prefix`): the Egress of eldric/backends/egress.py."""

    def __init__(self, body: dict, ctx: Context, prefix: str):
        conv = chat_in.read(body, model=ctx.model)
        self.model = ctx.model
        self.stream = conv.stream
        self._prefix = prefix  # the model's resource path: /v1beta/models/gemini-2.0-flash
        self._body = msgspec.json.encode(wire.request(conv, ctx.options))
        self._events = wire.Stream(ctx.model, conv.include_usage)
        self.done = False
        self.usage: tuple[int, int] | None = None

    def outbound(self) -> Outbound:
        if self.stream:
            return Outbound(self._prefix + ":streamGenerateContent", self._body, query="alt=sse",
                            headers={"Content-Type": "application/json",
                                     "Accept": "text/event-stream"})
        return Outbound(self._prefix + ":generateContent", self._body,
                        headers={"Content-Type": "application/json"}, framing="json")

    def whole(self, raw: bytes) -> bytes:
        try:
            body, counts = wire.completion(raw, self.model)
        except (msgspec.DecodeError, UnicodeDecodeError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a GenerateContentResponse ({type(exc).__name__})") from None
        self._events.count(counts)
        self.usage = self._events.usage
        return body

    def feed(self, frame: bytes) -> list[bytes]:
        events = self._events
        out = events.feed(frame)
        self.done, self.usage = events.done, events.usage
        return out

    def finish(self) -> list[bytes]:
        return self._events.finish()

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        return wire.error(status, raw, self.model) or (
            status, normalise(status, raw, self.model))

    def follow(self, raw: bytes) -> Outbound | None:
        return None

    def retry_after(self, raw: bytes) -> str | None:
        return wire.retry_after(raw)


class Embed:
    """One /v1/embeddings request as batchEmbedContents (whole replies only)."""

    follow = Chat.follow
    error = Chat.error
    retry_after = Chat.retry_after

    def __init__(self, body: dict, ctx: Context, prefix: str, resource: str):
        native, self._n, self._base64 = wire.embed_request(body, resource, ctx.options)
        self.stream = False
        self.done = True
        self.usage: tuple[int, int] | None = None  # batchEmbedContents reports none
        self.model = ctx.model
        self._prefix = prefix
        self._body = msgspec.json.encode(native)

    def outbound(self) -> Outbound:
        return Outbound(self._prefix + ":batchEmbedContents", self._body,
                        headers={"Content-Type": "application/json"}, framing="json")

    def whole(self, raw: bytes) -> bytes:
        return wire.embeddings(raw, self._n, self.model, self._base64)

    def feed(self, frame: bytes) -> list[bytes]:
        raise ValueError("embeddings are not streamed")

    def finish(self) -> list[bytes]:
        return []


def chat(body: dict, ctx: Context) -> Chat:
    return Chat(body, ctx, wire.model_path(ctx.model))


def embed(body: dict, ctx: Context) -> Embed:
    path = wire.model_path(ctx.model)
    return Embed(body, ctx, path, path.removeprefix("/v1beta/"))


def _models(reach: Reach) -> Outbound:
    return Outbound("/v1beta/models", method="GET", query="pageSize=1000")


def _refused(status: int, raw: bytes) -> bool:
    """A wrong key is Gemini's 400 INVALID_ARGUMENT with reason API_KEY_INVALID (a missing
    one 403 PERMISSION_DENIED): what its error mapping calls backend_auth_failed."""
    mapped = wire.error(status, raw, "probe")
    return status in (401, 403) or (mapped is not None and mapped[0] == 502
                                    and b"backend_auth_failed" in mapped[1])


# The options the Gemini translation reads (Vertex's Gemini models take them too).
OPTIONS = frozenset({"safety_settings", "generation_config", "task_type"})

ADAPTERS = {"gemini": Adapter(
    name="gemini", ops={CHAT: chat, EMBEDDINGS: embed}, sign=goog_api_key, models=_models,
    parse_models=wire.model_names, tools="native", vision=True, option_keys=OPTIONS,
    refused=_refused)}

ROWS = [BackendDef(
    "gemini", "Google Gemini API (generateContent)", "gemini",
    "https://generativelanguage.googleapis.com", "cloud", auth="goog-api-key",
    key_env="GEMINI_API_KEY", models="/v1beta/models", paths=(CHAT, EMBEDDINGS),
    tools="native", vision=True, embeddings=True, docs=DOCS,
    tested="fake (tests/fakes/gemini.py)",
    note="native API; the OpenAI-compatible endpoint is gemini-openai")]
