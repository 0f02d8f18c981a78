"""Which headers cross a hop, in each direction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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

# Not passed back to the client: the server frames the reply itself, and this hop sets its
# own X-Request-ID (the same id) and Date/Server. A backend's CORS headers stay behind too
# (llama.cpp's server allows every origin by default): whether a browser on another site
# may read a reply is the edge's decision (its cors_origins), not a backend's.
_DROP_DOWNSTREAM = HOP_BY_HOP | {
    "content-length", "x-request-id", "date", "server",
    "access-control-allow-origin", "access-control-allow-credentials",
    "access-control-allow-methods", "access-control-allow-headers",
    "access-control-expose-headers", "access-control-max-age"}


_DROP_UPSTREAM_RAW = frozenset(n.encode() for n in _DROP_UPSTREAM)


def upstream_header_block(raw: Iterable[tuple[bytes, bytes]], request_id: str,
                          extra: Mapping[str, str] | None = None) -> bytes:
    """The header lines sent upstream, encoded, straight from the client's raw headers
    (llhttp, on either lane, has already refused CR/LF in them): nothing decoded, nothing
    re-encoded. `extra` (the upstream's own credentials) replaces same-named headers."""
    drop = _DROP_UPSTREAM_RAW
    if extra:
        drop = drop | {k.lower().encode() for k in extra}
    lines = [b"%s: %s\r\n" % (name, value) for name, value in raw if name.lower() not in drop]
    lines.append(b"X-Request-ID: %s\r\n" % request_id.encode())
    if extra:
        for name, value in extra.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    return b"".join(lines)


def downstream_headers(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's reply headers the client gets (repeated ones, e.g. Set-Cookie, kept).
    A list: aiohttp builds its own multidict from it, once."""
    return [(k, v) for k, v in upstream if k.lower() not in _DROP_DOWNSTREAM]


def header_text(text: str, limit: int = 300) -> str:
    """Text (a client's model name, an upstream's message) made fit for a header value:
    one line, bounded, so a hostile name can neither split a header nor bloat it."""
    return " ".join(text.split())[:limit]
