"""Replies on the fast lane: what a handler returns, and how it becomes bytes."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import web


class Reply:
    """A whole reply (status, headers, body) for the fast lane: no multidict, no
    content-type parsing, one write. forward() makes one for a fast request where it
    would make a web.Response for an aiohttp one."""

    __slots__ = ("status", "headers", "body")
    prepared = False

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Streamed:
    """What forward() returns once a streamed reply has gone out on the fast lane."""

    __slots__ = ("status",)
    prepared = True

    def __init__(self, status: int) -> None:
        self.status = status


# Headers the server writes itself; a handler's copies are dropped.
_OWN = frozenset(("content-length", "transfer-encoding", "connection", "date", "keep-alive"))

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


def head_bytes(status: int, headers, close: bool, framing: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """Status line, the handler's headers, Date, framing (Content-Length or chunked) and
    Connection: close when this is the connection's last reply."""
    parts = [status_line(status)]
    for name, value in headers:
        if name.lower() in _OWN:
            continue
        if "\n" in value or "\r" in value:  # never let a value start a header of its own
            value = value.replace("\r", " ").replace("\n", " ")
        parts.append(f"{name}: {value}\r\n".encode())  # UTF-8, as aiohttp sends them
    parts.append(_date.get())
    parts.append(framing)
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def whole(resp: Reply | web.Response, close: bool) -> bytes:
    """A whole reply as bytes: a Reply, or a web.Response with a bytes body (the error and
    JSON replies the middleware and handlers make)."""
    body = resp.body
    if not isinstance(body, bytes):  # a Payload: not something fast handlers make
        raise TypeError(f"fast lane cannot send a {type(body).__name__} body")
    head = head_bytes(resp.status, resp.headers.items() if isinstance(resp, web.Response)
                      else resp.headers, close, b"Content-Length: %d\r\n" % len(body))
    return head + body
