"""OpenAI's Responses API (/v1/responses): the response's usage (input_tokens,
output_tokens, input_tokens_details.cached_tokens), in a whole reply or in the stream's
response.completed (also response.incomplete / response.failed) event's `response`;
the content is response.output_text.delta's `delta`."""

from __future__ import annotations

import msgspec

from eldric.roles.edge.usage.meter import Meter, count, payload

_ENDS = frozenset(("response.completed", "response.incomplete", "response.failed"))


class _Details(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_tokens_details: _Details | None = None


class _Response(msgspec.Struct):
    usage: _Usage | None = None


class _Event(msgspec.Struct):
    type: str = ""
    usage: _Usage | None = None  # a whole response
    response: _Response | None = None  # an event's
    delta: str | msgspec.Raw | None = None


_event = msgspec.json.Decoder(_Event)


class Responses:
    def read(self, meter: Meter, data: bytes) -> None:
        # the response object (with its usage, null until the end) is only in the
        # lifecycle events: a text delta is passed over by one byte search
        if b'"usage"' not in data:
            return
        try:
            ev = _event.decode(payload(data))
        except (msgspec.DecodeError, UnicodeDecodeError):
            return
        meter.done = meter.done or ev.type in _ENDS
        u = ev.response.usage if ev.response is not None else ev.usage
        if u is not None and u.input_tokens is not None:
            d = u.input_tokens_details
            meter.stated(count(u.input_tokens), count(u.output_tokens),
                         count(d.cached_tokens) if d is not None else 0)

    def text(self, data: bytes) -> str:
        if b'"response.output_text.delta"' not in data and b'"output_text"' not in data:
            return ""
        try:
            ev = _event.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return ""
        return ev.delta if isinstance(ev.delta, str) else ""
