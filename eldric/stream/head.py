"""Decode just the head of a request body (model, stream) and refuse bad bodies clearly."""

from __future__ import annotations

import re
from functools import cache

import msgspec

from eldric.errors import BadRequest
from eldric.wire.openai import Head

_PATH = re.compile(r"`\$\.([A-Za-z0-9_]+)")


@cache
def _decoder(kind: type[Head]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(kind)


def decode_head(body: bytes, kind: type[Head] = Head) -> Head:
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
