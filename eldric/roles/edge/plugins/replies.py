"""The head of a reply the edge makes itself (a pipe's, the tool loop's): the edge's
headers (rate limits, CORS), the request id as every hop sends it, the content type."""

from __future__ import annotations

from eldric import keys
from eldric.exchange import LaneRequest, RawPairs, encode_headers

JSON = "application/json"
SSE = "text/event-stream"


def head(request: LaneRequest, headers: dict[str, str], content_type: str,
         **more: str) -> RawPairs:
    extra = {"Cache-Control": "no-cache"} if content_type == SSE else {}
    return encode_headers({**headers, **extra, **more, "Content-Type": content_type,
                           "X-Request-ID": request[keys.HOP].request_id})
