"""Which headers cross a hop, in each direction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from multidict import CIMultiDict

# RFC 9110 §7.6.1 hop-by-hop headers, plus those the next hop must compute itself.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
})

# Not passed upstream: the client's credentials are for this hop only (a hop adds the
# upstream's own), Host/Content-Length are recomputed, and asking for identity encoding
# keeps the reply bytes untouched and readable by a tap.
_DROP_UPSTREAM = HOP_BY_HOP | {"host", "content-length", "authorization", "x-api-key",
                               "cookie", "accept-encoding", "x-request-id", "expect"}

# Not passed back to the client: aiohttp frames the reply itself, and this hop sets its own
# X-Request-ID (the same id) and Date/Server.
_DROP_DOWNSTREAM = HOP_BY_HOP | {"content-length", "x-request-id", "date", "server"}


def upstream_headers(incoming: Mapping[str, str], request_id: str,
                     extra: Mapping[str, str] | None = None) -> dict[str, str]:
    out = {k: v for k, v in incoming.items() if k.lower() not in _DROP_UPSTREAM}
    out["X-Request-ID"] = request_id
    if extra:
        out.update(extra)
    return out


def downstream_headers(upstream: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """The upstream's reply headers the client gets (repeated ones, e.g. Set-Cookie, kept)."""
    return CIMultiDict((k, v) for k, v in upstream if k.lower() not in _DROP_DOWNSTREAM)
