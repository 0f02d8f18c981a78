"""An uploaded batch input file (JSONL) checked line by line before it is stored, so a
batch made from it never fails on its shape: each line {custom_id, method, url, body}."""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.batch.objects import ENDPOINTS
from eldric.errors import BadRequest


class Line(msgspec.Struct, forbid_unknown_fields=False):
    custom_id: str
    method: str
    url: str
    body: dict[str, Any]


_decode = msgspec.json.Decoder(Line).decode


def _bad(n: int, code: str, message: str) -> BadRequest:
    return BadRequest(f"line {n} of the file: {message}", param="file", code=code)


def check(data: bytes, max_lines: int) -> list[Line]:
    """Every line of `data` as a request, or a 400 naming the first bad line (1-based)."""
    out: list[Line] = []
    seen: set[str] = set()
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = _decode(raw)
        except msgspec.ValidationError as exc:
            raise _bad(n, "invalid_request_line",
                       f"not a batch request ({exc}); each line is "
                       '{"custom_id", "method", "url", "body"}') from None
        except msgspec.DecodeError:
            raise _bad(n, "invalid_json_line", "not valid JSON") from None
        if line.method.upper() != "POST":
            raise _bad(n, "invalid_method", f"method {line.method!r}: only POST is supported")
        if line.url not in ENDPOINTS:
            raise _bad(n, "invalid_url", f"url {line.url!r} is not one of "
                       + ", ".join(ENDPOINTS))
        if line.body.get("stream") is True:  # its reply would be SSE, not a response body
            raise _bad(n, "stream_not_supported",
                       'a batch request cannot stream ("stream": true in its body)')
        if line.custom_id in seen:
            raise _bad(n, "duplicate_custom_id", f"custom_id {line.custom_id!r} appears twice")
        seen.add(line.custom_id)
        out.append(line)
        if len(out) > max_lines:
            raise _bad(n, "too_many_requests_in_file",
                       f"more than {max_lines} requests (--batch-max-lines)")
    if not out:
        raise BadRequest("the file holds no request lines", param="file", code="empty_file")
    return out
