"""How a reply was routed, in its body, for a client that asks with
`X-Eldric-Routing-Info: body`: a non-streamed JSON reply gains
`{"worker", "worker_host", "routing": {"strategy", "reason"}}` (the product description's
shape; the same as the X-Eldric-* headers say).

Only then is the reply read whole and re-encoded (through the forwarding core's
translate hook, so a failure before the first byte stays retryable); every other reply
passes as bytes. A streamed request is left alone: its events are the worker's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msgspec

HEADER = b"x-eldric-routing-info"
_N = len(HEADER)
_encode = msgspec.json.Encoder()


def asked(raw_headers: Any) -> bool:
    """Whether the client asked for it (a scan of the raw header names, nothing decoded)."""
    for name, value in raw_headers:
        if len(name) == _N and name.lower() == HEADER:
            return value.strip().lower() == b"body"
    return False


class RoutingInfo:
    """A Translator (eldric.wire.translate) for a whole reply: the JSON object it is,
    with the routing fields added; anything else as it came."""

    stream = False
    media_type = "application/json"

    def __init__(self, path: str, model: str | None, worker: str, url: str, strategy: str,
                 reason: str) -> None:
        self.upstream_path = path
        self.model = model or ""
        self.fields = {"worker": worker, "worker_host": urlsplit(url).hostname or url,
                       "routing": {"strategy": strategy, "reason": reason}}

    def request(self) -> bytes:  # the body is sent as it is (forward()'s `body`)
        raise NotImplementedError

    def whole(self, body: bytes) -> bytes:
        try:
            doc = msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError):  # nested past msgspec's bound
            return body
        if not isinstance(doc, dict):
            return body
        doc.update(self.fields)
        return _encode.encode(doc)

    # a non-streamed reply only: the core calls whole(), never these
    def feed(self, event: bytes) -> bytes:
        return event

    def close(self) -> bytes:
        return b""

    def cut(self, status: int, message: str, code: str) -> bytes:
        return b""

