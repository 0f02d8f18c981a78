"""OpenAI chat completions <-> Claude on Vertex AI (rawPredict / streamRawPredict), pure.

Vertex serves Anthropic's Messages API under its own resource path, the model in the path
instead of the body and ``anthropic_version: "vertex-2023-10-16"`` in the body instead of
a header: https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/
use-claude. The request and reply are the Messages API's, so the translation is
eldric/wire/anthropic_egress*.py's; errors come in two shapes: the Vertex front's
google.rpc.Status (quota, auth, unknown model) and the model's own Anthropic error.
"""

from __future__ import annotations

import msgspec

from eldric.backends.egress import Context, Outbound
from eldric.errors import error_json
from eldric.stream.upstream_errors import normalise
from eldric.wire.anthropic_egress import from_anthropic, to_anthropic
from eldric.wire.anthropic_egress_stream import StreamTranslator
from eldric.wire.anthropic_shared import ERRORS
from eldric.wire.native import gemini

VERSION = "vertex-2023-10-16"

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def error(status: int, raw: bytes, upstream: str) -> tuple[int, bytes]:
    """A Vertex Status error, else Anthropic's ``{"type": "error", "error": {type,
    message}}`` (its 529 overloaded a 503), else the body normalised."""
    try:
        data = _decode(raw) if raw else None
    except (msgspec.DecodeError, UnicodeDecodeError):
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and "status" in err:
        return gemini.error(status, raw, upstream)
    if status == 529:
        status = 503
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return status, normalise(status, raw, upstream)
    otype, code, _ = ERRORS.get(err.get("type"), (None, err.get("type"), status))
    return status, error_json(status, err["message"], type=otype, code=code)


class Chat:
    """One chat request to Claude on Vertex: the Egress of ``egress.py``."""

    def __init__(self, body: dict, ctx: Context, prefix: str):
        payload = to_anthropic(body, model=ctx.model)
        del payload["model"]  # the path names it
        payload["anthropic_version"] = VERSION
        self.stream = bool(payload.get("stream"))
        self.model = ctx.model
        self.done = False
        self.usage: tuple[int, int] | None = None
        self._prefix = prefix
        self._body = _encode(payload)
        opts = body.get("stream_options")
        self._stream = StreamTranslator(
            model=ctx.model, include_usage=bool(isinstance(opts, dict) and opts.get("include_usage")))

    def outbound(self) -> Outbound:
        if self.stream:
            return Outbound(self._prefix + ":streamRawPredict", self._body,
                            headers={"Content-Type": "application/json",
                                     "Accept": "text/event-stream"})
        return Outbound(self._prefix + ":rawPredict", self._body,
                        headers={"Content-Type": "application/json"}, framing="json")

    def whole(self, raw: bytes) -> bytes:
        try:
            out = from_anthropic(_decode(raw), model=self.model)
        except (msgspec.DecodeError, UnicodeDecodeError, TypeError, KeyError,
                AttributeError) as exc:
            raise ValueError(f"not an Anthropic message ({type(exc).__name__})") from None
        usage = out.get("usage") or {}
        self.usage = (usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        return _encode(out)

    def feed(self, frame: bytes) -> list[bytes]:
        out = self._stream.feed(frame)
        self.usage = self._stream.usage
        self.done = self._stream.complete or self._stream.errored
        return out

    def finish(self) -> list[bytes]:
        return self._stream.finish()

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        return error(status, raw, self.model)

    def follow(self, raw: bytes) -> Outbound | None:
        return None
