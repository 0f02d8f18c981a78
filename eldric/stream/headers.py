"""Which headers cross a hop, in each direction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import AnyStr

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
_DROP_DOWNSTREAM_RAW = frozenset(n.encode() for n in _DROP_DOWNSTREAM)
# What a Connection header says most of the time: nothing beyond what is dropped anyway
# (looked up as sent; another spelling takes the slower way, with the same result).
_PLAIN_CONNECTION = frozenset((b"keep-alive", b"close", b"Keep-Alive", b"Close",
                               "keep-alive", "close", "Keep-Alive", "Close"))


def _aside(named: list[AnyStr], value: AnyStr) -> bool:
    """Keep a Connection header's value (the header itself is dropped) to read its names
    once every header has been seen: it may come after the ones it names."""
    named.append(value)
    return False


def _named(values: list[AnyStr]) -> set[AnyStr]:
    """The header names a Connection header lists (RFC 9110 §7.6.1: they are this hop's
    own), lower-case, as the values' own type."""
    comma = b"," if isinstance(values[0], bytes) else ","
    return {t.strip().lower() for v in values for t in v.split(comma)} - {b"", ""}  # type: ignore[arg-type, operator]


def upstream_header_block(raw: Iterable[tuple[bytes, bytes]], request_id: str,
                          extra: Mapping[str, str] | None = None) -> bytes:
    """The header lines sent upstream, encoded, straight from the client's raw headers
    (llhttp, on either lane, has already refused CR/LF in them): nothing decoded, nothing
    re-encoded. `extra` (the upstream's own credentials) replaces same-named headers;
    headers the client's Connection header names stay behind, as hop-by-hop ones do."""
    drop = _DROP_UPSTREAM_RAW
    if extra:
        drop = drop | {k.lower().encode() for k in extra}
    named: list[bytes] = []
    lines = [b"%s: %s\r\n" % (name, value) for name, value in raw
             if (low := name.lower()) not in drop
             or (low == b"connection" and value not in _PLAIN_CONNECTION and _aside(named, value))]
    if named and (more := _named(named)):  # rare: written again without what it names
        drop = drop | more
        lines = [b"%s: %s\r\n" % (name, value) for name, value in raw
                 if name.lower() not in drop]
    lines.append(b"X-Request-ID: %s\r\n" % request_id.encode())
    if extra:
        for name, value in extra.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    return b"".join(lines)


def downstream_headers(upstream: Iterable[tuple[AnyStr, AnyStr]]) -> list[tuple[AnyStr, AnyStr]]:
    """The upstream's reply headers the client gets (repeated ones, e.g. Set-Cookie, kept),
    as the names and values came (bytes from eldric's client, text from aiohttp's), minus
    hop-by-hop ones and those the upstream's Connection header names."""
    pairs = upstream if isinstance(upstream, list) else list(upstream)
    if not pairs:
        return []
    raw = isinstance(pairs[0][0], bytes)
    drop: frozenset = _DROP_DOWNSTREAM_RAW if raw else _DROP_DOWNSTREAM
    connection = b"connection" if raw else "connection"
    named: list[AnyStr] = []
    kept = [(k, v) for k, v in pairs
            if (low := k.lower()) not in drop
            or (low == connection and v not in _PLAIN_CONNECTION and _aside(named, v))]
    if named and (more := _named(named)):
        kept = [(k, v) for k, v in kept if k.lower() not in more]
    return kept


def header_text(text: str, limit: int = 300) -> str:
    """Text (a client's model name, an upstream's message) made fit for a header value:
    one line, bounded, so a hostile name can neither split a header nor bloat it."""
    return " ".join(text.split())[:limit]
