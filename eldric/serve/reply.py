"""How a reply becomes bytes on the fast lane: the status line, the headers, Date, the
framing. aiohttp's rules where a handler's web.Response leaves a choice (no body, no
Content-Type), so a reply reads the same whichever lane sent it."""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import web

from eldric.exchange import RawPairs, Reply

# Headers the server writes itself; a handler's copies are dropped.
_OWN = frozenset(("content-length", "transfer-encoding", "connection", "date", "keep-alive"))
# Statuses whose replies have no body and no Content-Length (RFC 9110 §8.6, §15.3.5,
# §15.4.5; aiohttp's EMPTY_BODY_STATUS_CODES and should_remove_content_length).
_EMPTY = frozenset((204, 304, *range(100, 200)))

_status_lines: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _status_lines.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        line = _status_lines[status] = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
    return line


class _DateCache:
    """The Date header, formatted once a second."""

    __slots__ = ("second", "line")

    def __init__(self) -> None:
        self.second = 0
        self.line = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode("latin-1")
        return self.line


_date = _DateCache()


def raw_block(headers: RawPairs) -> bytes:
    """Relayed headers, written as they came (downstream_headers has taken out the ones
    the server writes itself; llhttp refused CR/LF in them)."""
    return b"".join([b"%s: %s\r\n" % pair for pair in headers])


def text_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """A handler's own headers (a web.Response's), UTF-8 as aiohttp sends them."""
    parts = []
    for name, value in headers:
        if name.lower() in _OWN:
            continue
        if "\n" in value or "\r" in value:  # never let a value start a header of its own
            value = value.replace("\r", " ").replace("\n", " ")
        parts.append(f"{name}: {value}\r\n".encode())
    return b"".join(parts)


def head_bytes(status: int, block: bytes, close: bool, framing: bytes) -> bytes:
    """Status line, the header lines, Date, framing (Content-Length or chunked) and
    Connection: close when this is the connection's last reply."""
    return b"".join((status_line(status), block, _date.get(), framing,
                     b"Connection: close\r\n\r\n" if close else b"\r\n"))


def whole(resp: Reply | web.Response, close: bool) -> bytes:
    """A whole reply as bytes: a Reply, or a web.Response with a bytes body or none (the
    error and JSON replies the middleware and handlers make)."""
    if type(resp) is Reply:
        data = resp.body
        framing = b"Content-Length: %d\r\n" % len(data) if resp.status not in _EMPTY else b""
        return head_bytes(resp.status, raw_block(resp.headers), close, framing) + data
    assert isinstance(resp, web.Response)
    body = resp.body
    if body is None or resp.status in _EMPTY:
        body = b""
    elif not isinstance(body, (bytes, bytearray)):  # a Payload: no fast handler makes one
        raise TypeError(f"fast lane cannot send a {type(body).__name__} body")
    block = text_block(resp.headers.items())
    if body and "Content-Type" not in resp.headers:
        block += b"Content-Type: application/octet-stream\r\n"  # aiohttp's default
    framing = b"" if resp.status in _EMPTY else b"Content-Length: %d\r\n" % len(body)
    return head_bytes(resp.status, block, close, framing) + body
