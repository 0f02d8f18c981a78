"""What the fast lane checks in a request head before it takes it or hands it over: that
llhttp parses it, and aiohttp's own limits (aiohttp_glue), so whether a request is
refused does not depend on which lane reads it."""

from __future__ import annotations

import httptools

from eldric.serve.aiohttp_glue import MAX_HEADERS, MAX_LINE


class HandOver(Exception):
    """The request is aiohttp's: from its first byte on, the connection goes there."""


class Malformed(Exception):
    """The head is not valid HTTP/1.1 (llhttp's reason is the message)."""


class _Count:
    __slots__ = ("headers",)

    def __init__(self) -> None:
        self.headers = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers += 1


def check(head: bytes) -> None:
    """Raise Malformed unless `head` parses as an HTTP/1.x request head within aiohttp's
    limits."""
    count = _Count()
    try:
        httptools.HttpRequestParser(count).feed_data(head)
    except httptools.HttpParserUpgrade:
        pass  # a valid head asking for another protocol: aiohttp decides
    except httptools.HttpParserError as exc:
        raise Malformed(str(exc)) from None
    limits(head, count.headers)


def limits(head: bytes | bytearray, headers: int) -> None:
    """aiohttp's parser limits (aiohttp_glue): the lane refuses what aiohttp would, so the
    verdict does not depend on the lane; a line can only be too long in a long head."""
    if headers > MAX_HEADERS:
        raise Malformed(f"more than {MAX_HEADERS} headers")
    unfolded(head)
    if len(head) > MAX_LINE and max(map(len, head.split(b"\n"))) > MAX_LINE + 1:
        raise Malformed(f"a line of the head is longer than {MAX_LINE} bytes")


def unfolded(head: bytes | bytearray) -> None:
    """Refuse obs-fold (a header continued on a line that starts with a space or tab):
    RFC 9112 §5.2 lets a server refuse it, and whether llhttp does depends on its version
    (httptools 0.6.0's accepts it), so the verdict is eldric's own on both lanes."""
    if b"\n " in head or b"\n\t" in head:
        raise Malformed("a folded header line (obs-fold)")
