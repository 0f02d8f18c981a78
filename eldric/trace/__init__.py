"""Traces across every hop (OpenTelemetry), off by default and then free.

The face every role and shared layer calls. With tracing off (no --otel-endpoint) a
request's Hop has no span (``hop.span is None``) and ``child()`` hands back ``NULL``, a
shared do-nothing span: no import of the OpenTelemetry SDK, no allocation. With it on,
``eldric.trace.otel`` (imported only then; the optional extra ``eldric[otel]``) opens one
span per request per hop in the middleware, continues the client's or the previous hop's
``traceparent``, sends its own upstream, and makes the child spans below.

Children take their parent explicitly (the hop's span), not from a context variable, so
side-by-side work (a swarm's members, a tool loop's calls) gets the right parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class SpanLike(Protocol):
    """What a caller may do with a span: OpenTelemetry's, or NULL."""

    def set_attribute(self, key: str, value: Any) -> None: ...
    def set_attributes(self, attrs: Mapping[str, Any]) -> None: ...
    def fail(self, description: str) -> None: ...  # status ERROR, with why
    def __enter__(self) -> SpanLike: ...
    def __exit__(self, *exc: object) -> bool | None: ...


class _Null:
    """The span of a request that is not traced: every call does nothing."""

    __slots__ = ()

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attrs: Mapping[str, Any]) -> None:
        pass

    def fail(self, description: str) -> None:
        pass

    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NULL: SpanLike = _Null()


def child(hop: Any, name: str, attrs: Mapping[str, Any] | None = None) -> SpanLike:
    """A child span of this hop's request span (`hop`: the request's eldric.context.Hop,
    or None), used as a context manager: ``with trace.child(hop, "eldric.retry", {...})
    as span:``; it ends when the block does, ERROR if the block raised. NULL when the
    request is not traced."""
    parent = None if hop is None else hop.span
    if parent is None:
        return NULL
    from eldric.trace import otel  # only a traced request gets here

    return otel.child(parent, name, attrs)


class Under:
    """A parent for child() that is not the hop's span but one of its children (a swarm
    member's span, for the attempts of its call): what child() reads of a Hop, `.span`.
    Under(NULL) is an untraced parent (its children are NULL too)."""

    __slots__ = ("span",)

    def __init__(self, span: SpanLike) -> None:
        self.span = None if span is NULL else span
