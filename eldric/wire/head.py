"""Decode a request body into a (lenient or strict) Struct, refusing bad bodies clearly.

The forwarding hops decode just a head (model, stream); control-plane handlers decode
their whole small bodies (registrations, settings, new clients). Either way a bad body is
a 400 naming the parameter. It lives with the wire types it decodes into, not in the
forwarding core (eldric.stream.decode_head still re-exports it)."""

from __future__ import annotations

import re
from functools import cache
from typing import TypeVar

import msgspec

from eldric.errors import BadRequest
from eldric.wire.openai import Head

T = TypeVar("T")

_PATH = re.compile(r"`\$\.([A-Za-z0-9_]+)")


@cache
def _decoder(kind: type) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(kind)


def decode_head(body: bytes, kind: type[T] = Head) -> T:  # type: ignore[assignment]
    """Return the decoded head, or raise a 400 naming the offending parameter."""
    if not body:
        raise BadRequest("the request body is empty; expected a JSON object", code="invalid_body")
    try:
        return _decoder(kind).decode(body)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        m = _PATH.search(msg)
        param = m.group(1) if m else None
        if param is None and "missing required field" in msg:
            param = msg.rsplit("`", 2)[-2]
        raise BadRequest(f"invalid request body: {msg}", param=param) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    except UnicodeDecodeError:  # e.g. a lone surrogate escaped inside a string
        raise BadRequest("the request body is not valid UTF-8", code="invalid_json") from None
    except RecursionError:  # {"a": {"a": … nested past the decoder's depth limit
        raise BadRequest("the request body is nested too deeply", code="too_deep") from None
