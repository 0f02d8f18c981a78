"""Anthropic's Messages API (/v1/messages): message_start's message.usage states the
prompt (input_tokens excludes the cache: the whole prompt is input_tokens +
cache_creation_input_tokens + cache_read_input_tokens; cached = cache_read_input_tokens),
message_delta's usage.output_tokens the completion (cumulative; where it carries
input_tokens too, as eldric's translator and Anthropic's later API versions do, those
are the prompt's final count), message_stop ends it; a whole Message has both in its
usage."""

from __future__ import annotations

import msgspec

from eldric.roles.edge.usage.meter import Meter, count, payload


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Message(msgspec.Struct):
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    text: str | None = None
    thinking: str | None = None
    partial_json: str | None = None


class _Event(msgspec.Struct):
    type: str = ""
    message: _Message | None = None
    usage: _Usage | None = None
    delta: _Delta | None = None
    content: list[_Delta] = []  # a whole Message's blocks


_event = msgspec.json.Decoder(_Event)


def _prompt(u: _Usage) -> tuple[int, int]:
    cached = count(u.cache_read_input_tokens)
    return count(u.input_tokens) + count(u.cache_creation_input_tokens) + cached, cached


class Anthropic:
    def read(self, meter: Meter, data: bytes) -> None:
        if b'"message_stop"' in data:
            meter.done = True
            return
        if b'"usage"' not in data:
            return
        try:
            ev = _event.decode(payload(data))
        except (msgspec.DecodeError, UnicodeDecodeError):
            return
        if ev.type == "message_start" and ev.message is not None and ev.message.usage:
            prompt, cached = _prompt(ev.message.usage)
            meter.stated(prompt, None, cached)
        elif ev.type == "message_delta" and ev.usage is not None:
            if ev.usage.input_tokens is not None:  # cumulative: it wins over message_start's
                prompt, cached = _prompt(ev.usage)
                meter.stated(prompt, None, cached)
            if ev.usage.output_tokens is not None:
                meter.stated(None, count(ev.usage.output_tokens))
        elif ev.type == "message" and ev.usage is not None:
            prompt, cached = _prompt(ev.usage)
            meter.stated(prompt, count(ev.usage.output_tokens), cached)

    def text(self, data: bytes) -> str:
        try:
            ev = _event.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return ""
        parts = [ev.delta] if ev.delta is not None else ev.content
        return "".join((p.text or "") + (p.thinking or "") + (p.partial_json or "")
                       for p in parts)
