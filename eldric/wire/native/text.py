"""What the text-generation APIs share: a prompt in, generated text out.

KServe/Triton's v2 generate, TGI's native /generate and a configured template all take
one text (or a JSON body built from the conversation) and answer with generated text,
without native tool calls or images. ``TextEgress`` is the common half of their Egress:
the Conversation read once (``chat_in``), the refusals every such API needs (images,
tools, response_format — a clear 400, never a silent drop), the OpenAI reply written
through ``chat_out`` (whole or as chunk events), the finish and usage bookkeeping, and
the error mapping. Each API's module only says how its request looks and how its reply
is read.

Tools: these kinds have ``tools="xml"`` in their rows, so eldric's XML tool emulation
(wire/xmltools.py) turns ``tools`` into system-prompt text and ``<tool_call>`` output
back into tool_calls around this egress; a body that still holds tools here (emulation
off) is refused rather than sent without them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.errors import BadRequest, error_json
from eldric.wire.native import chat_in, chat_out
from eldric.wire.native.outbound import Context
from eldric.wire.native.refused import Refused

_decode = msgspec.json.decode


def sse_data(frame: bytes) -> bytes | None:
    """The data of one SSE event (its ``data:`` lines joined; the space after the colon
    is optional, TGI's axum server sends none); None for an event without data (a
    comment, a keep-alive)."""
    if frame.startswith(b"data:") and b"\n" not in frame:
        return frame[5:].strip()
    lines = [ln[5:].strip() for ln in frame.split(b"\n") if ln.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def json_of(raw: bytes, what: str) -> Any:
    """Decoded JSON; ValueError naming the API for a body that is not JSON."""
    try:
        return _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError(f"{what} answered with a body that is not JSON") from None


def read_text_only(body: dict, model: str, api: str) -> chat_in.Conversation:
    """The Conversation of a request for a text-only API, refusing what it cannot take."""
    conv = chat_in.read(body, model=model)
    if conv.has_images:
        raise BadRequest(f"this model's backend ({api}) takes no images",
                         param="messages", code="vision_unsupported")
    if conv.tools and conv.tool_choice != "none":
        raise BadRequest(f"this model's backend ({api}) has no native tool calling and "
                         "XML tool emulation is not on for it", param="tools")
    if conv.sampling.json_mode:
        raise BadRequest(f"response_format is not supported by {api}",
                         param="response_format")
    return conv


def one_stop(conv: chat_in.Conversation, api: str) -> str | None:
    """The one stop string an API with scalar parameters takes (KServe v2's parameter
    values are strings, numbers or booleans, never arrays)."""
    stop = conv.sampling.stop
    if len(stop) > 1:
        raise BadRequest(f"{api} takes one stop string", param="stop")
    return stop[0] if stop else None


class TextEgress:
    """The shared half of a text-generation Egress (see the module docstring)."""

    api = "text generation"  # named in errors

    def __init__(self, body: dict, ctx: Context):
        conv = read_text_only(body, ctx.model, self.api)
        self.conv = conv
        self.options = ctx.options
        self.stream = conv.stream
        self.done = False
        # An API whose stream has no end marker sets this: the body's end is the end.
        self.ends_with_body = False
        self._sent = False  # events went out (after them an error is an error event)
        self.usage: tuple[int, int] | None = None
        self.writer = chat_out.ChunkWriter(
            conv.model, include_usage=ctx.include_usage or conv.include_usage)
        self._prompt_tokens = 0
        self._completion_tokens = 0

    def event(self, frame: bytes) -> dict | None:
        """One SSE frame's JSON object; None for a frame without data."""
        data = sse_data(frame)
        if not data:
            return None
        obj = json_of(data, self.api)
        if not isinstance(obj, dict):
            raise ValueError(f"{self.api}: a stream event is not an object")
        return obj

    # -- usage -----------------------------------------------------------------------
    def count(self, prompt: int | None = None, completion: int | None = None,
              *, add: bool = False) -> None:
        """Token counts the reply gave (completion added up where an API counts per
        event)."""
        if isinstance(prompt, int) and not isinstance(prompt, bool):
            self._prompt_tokens = prompt
        if isinstance(completion, int) and not isinstance(completion, bool):
            self._completion_tokens = self._completion_tokens + completion if add else completion
        self.usage = (self._prompt_tokens, self._completion_tokens)

    # -- replies ---------------------------------------------------------------------
    def reply(self, text: str, finish_reason: str) -> bytes:
        """The whole chat.completion."""
        prompt, completion = self.usage or (None, None)
        return msgspec.json.encode(chat_out.completion(
            self.conv.model, text=text, finish_reason=finish_reason,
            prompt_tokens=prompt, completion_tokens=completion, id=self.writer.id))

    def text(self, text: str | None) -> list[bytes]:
        out = self.writer.text(text)
        self._sent = self._sent or bool(out)
        return out

    def end(self, finish_reason: str) -> list[bytes]:
        """The stream said it ended: the finish chunk, the usage chunk, [DONE]."""
        self.done = True
        return [*self.writer.finish(finish_reason), *self.writer.end(self.usage)]

    def fail(self, status: int, message: str, code: str = "upstream_error") -> list[bytes]:
        """An error the API reported inside its stream: one error event, then nothing;
        before any content it is the error reply it stands for (Refused: failover on
        429/5xx, a 4xx the client's)."""
        if not self._sent:
            raise Refused(status, error_json(status, message, code=code))
        self.done = True
        self.writer.finished = True
        return [chat_out.error_event(status, message, code)]

    def finish(self) -> list[bytes]:
        """The native stream ended. After the end or an error event nothing more; a
        stream cut before its API said it ended gets nothing either (the call sends the
        error event); an API that never says it ended (``ends_with_body``) is finished
        here."""
        if self.writer.finished or not (self.done or self.ends_with_body):
            return []
        return self.end("stop")

    def follow(self, raw: bytes) -> None:
        return None

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        """The status kept; the message from the fields these servers use (Triton's,
        TF Serving's and TGI's "error", TorchServe's "message", FastAPI's "detail"),
        TGI's error_type as the code."""
        code = None
        if b'"error_type"' in raw:
            try:
                kind = _decode(raw).get("error_type")
                code = kind if isinstance(kind, str) else None
            except (msgspec.DecodeError, UnicodeDecodeError, AttributeError):
                pass
        return status, chat_out.api_error(status, raw, "error", "message", "detail", code=code)
