"""Shared-secret checks (cluster key, admin key): constant-time, never logged."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from eldric.errors import Unauthorized

if TYPE_CHECKING:
    from eldric.exchange import LaneRequest


def presented_key(request: LaneRequest) -> str | None:
    """The key a request carries: `Authorization: Bearer …` or `X-API-Key`."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("X-API-Key") or None


def key_matches(presented: str | None, expected: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def require_key(request: LaneRequest, expected: str | None, what: str) -> None:
    """Raise 401 unless `expected` is unset or the request presents it."""
    if expected is None:
        return
    presented = presented_key(request)
    if not key_matches(presented, expected):
        raise Unauthorized(f"{'missing' if presented is None else 'invalid'} {what}; send it as "
                           "'Authorization: Bearer KEY' or 'X-API-Key: KEY'")


def hash_key(key: str) -> str:
    """An API key's digest: what the edge keeps of a client's key, and whose stored
    responses are whose (never the key itself)."""
    return hashlib.sha256(key.encode()).hexdigest()
