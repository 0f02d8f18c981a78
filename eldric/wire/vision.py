"""Image parts in a request, and whether the backend that gets it can see them.

Each client API puts images in its own place:

- OpenAI Chat Completions: a user message's content part ``{"type": "image_url",
  "image_url": {"url": "https://…" | "data:image/png;base64,…"}}``
  (https://platform.openai.com/docs/guides/images-vision);
- Anthropic Messages: a content block ``{"type": "image", "source": {"type": "base64" |
  "url", …}}``, in a message or inside a tool_result's content
  (https://docs.anthropic.com/en/docs/build-with-claude/vision);
- OpenAI Responses: an input item's content part ``{"type": "input_image", "image_url":
  …}`` (https://platform.openai.com/docs/api-reference/responses/create);
- Ollama: ``images``, a list of base64 strings, on a /api/chat message or a /api/generate
  body (https://github.com/ollama/ollama/blob/main/docs/api.md).

Each API names them with one JSON string (``"image_url"``, ``"image"``,
``"input_image"``, ``"images"``), so a byte search (``maybe``) tells a text request
apart for the price of one ``in`` on its body; only a body that has the mark is decoded to look for real (``has_images``). A hop
whose backend sees everything and fetches nothing does not even search (``checks``).

A backend or model that cannot see images is refused with 400 ``vision_unsupported``
before anything is sent (the embedded SmolLM2's llama.cpp would answer 500 "image input
is not supported", which reads as a broken backend to routers and SDKs). What can see is
``Vision``: the backend kind's default (a table row's or adapter's ``vision``: True,
False or None for unknown, which is let through), narrowed by configuration (worker
``--vision-models GLOB,…`` / ``--no-vision``, cloud backend ``options.vision``).
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

import msgspec

from eldric.errors import BadRequest, UpstreamFailure

# The JSON string each API names its images with (a longer needle is a faster search).
_MARKS = {"/v1/chat/completions": b'"image_url"', "/v1/messages": b'"image"',
          "/v1/responses": b'"input_image"', "/api/chat": b'"images"',
          "/api/generate": b'"images"'}
_PART_TYPES = frozenset(("image_url", "image", "input_image"))
CHAT = "/v1/chat/completions"


class VisionUnsupported(BadRequest):
    code = "vision_unsupported"

    def failure(self, upstream: str) -> UpstreamFailure:
        """This refusal as one candidate's "not here" (a hop with several backends for
        the model tries the next, and relays this 400 when none can see)."""
        return UpstreamFailure(upstream, "status", self.status, self.body())


def maybe(body: bytes, path: str = CHAT) -> bool:
    """Whether a body of `path`'s API may hold an image (False: it holds none; the cheap
    test, one search of its bytes). A path of no API that carries images: False."""
    mark = _MARKS.get(path)
    return mark is not None and mark in body


def _parts(node: Any) -> bool:
    """Any image part in a message's content, nested content (tool results) included."""
    if isinstance(node, list):
        return any(_parts(x) for x in node)
    if isinstance(node, dict):
        if node.get("type") in _PART_TYPES:
            return True
        return any(_parts(node.get(k)) for k in ("content", "output") if k in node)
    return False


def in_request(obj: Any, path: str) -> bool:
    """Whether a decoded request body of `path`'s API holds an image."""
    if not isinstance(obj, dict):
        return False
    if path == "/api/generate":
        return bool(obj.get("images"))
    if path == "/v1/responses":
        return _parts(obj.get("input"))
    msgs = obj.get("messages")
    if not isinstance(msgs, list):
        return False
    if path == "/api/chat":
        return any(isinstance(m, dict) and m.get("images") for m in msgs)
    # Chat Completions, Messages (and what else carries messages in OpenAI's shape)
    return any(isinstance(m, dict) and _parts(m.get("content")) for m in msgs)


def has_images(body: bytes, path: str = CHAT) -> bool:
    """Whether the request body of `path`'s API holds an image; a body that is not JSON
    holds none (the hop that reads it refuses it as it would)."""
    if not maybe(body, path):
        return False
    try:
        return in_request(msgspec.json.decode(body), path)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return False


class Vision:
    """Which models of one backend take images.

    `default` is the kind's (True: it does, False: it does not, None: not known, let
    through); `models` (globs), when given, are the ones that do and every other model of
    the backend does not; `off` refuses images for every model."""

    __slots__ = ("default", "models", "off", "where")

    def __init__(self, default: bool | None = None, models: Iterable[str] | None = None,
                 off: bool = False, where: str = "this backend") -> None:
        self.default = default
        self.models = tuple(models) if models is not None else None
        self.off = off
        self.where = where  # named in the refusal: "backend embedded"

    @classmethod
    def of_option(cls, value: Any, default: bool | None, where: str) -> Vision:
        """From a cloud backend's ``options.vision``: true, false, or a list of globs."""
        if value is None:
            return cls(default, where=where)
        if isinstance(value, bool):
            return cls(value, off=not value, where=where)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return cls(default, models=value, where=where)
        raise ValueError("options.vision must be true, false or a list of model globs")

    def sees(self, model: str | None) -> bool | None:
        """Whether `model` takes images (None: not known)."""
        if self.off:
            return False
        if self.models is not None:
            return any(fnmatchcase(model or "", g) for g in self.models)
        return self.default

    @property
    def checks(self) -> bool:
        """Whether any request can be refused (else nothing need be looked at)."""
        return self.off or self.models is not None or self.default is False

    def check(self, body: bytes, path: str, model: str | None) -> None:
        """Refuse (400 vision_unsupported) a request with images for a model that does
        not take them. A text request pays one byte search."""
        if not self.checks or not maybe(body, path) or self.sees(model) is not False:
            return
        if has_images(body, path):
            raise self.refusal(model)

    def refusal(self, model: str | None) -> VisionUnsupported:
        return VisionUnsupported(
            f"the model {model!r} on {self.where} does not take images: send text only, "
            "or ask for a model that can see (a vision model)", param="messages")


# The first bytes of each image type the APIs take, for an image whose type nobody said
# (Ollama's clients send bare base64; a server may answer application/octet-stream).
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def sniff(data: bytes) -> str | None:
    """The image type an image's first bytes say (16 are enough), or None."""
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
