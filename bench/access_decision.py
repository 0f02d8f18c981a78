"""What deciding an access line's level costs per request (eldric.http._access_writer).

    python bench/access_decision.py

Prints ns per call for a fast-lane inference request (the hot path: one type test), an
aiohttp GET from a client and one from eldric itself (a header lookup), and a /health
scrape (a set lookup).
"""

from __future__ import annotations

import timeit

from aiohttp.test_utils import make_mocked_request

from eldric import log
from eldric.http import _access_writer
from eldric.serve.request import FastRequest

N = 1_000_000


def main() -> None:
    log.setup("info", "json")
    raw = [(b"Host", b"127.0.0.1:8890"), (b"Content-Type", b"application/json"),
           (b"Content-Length", b"80"), (b"User-Agent", b"OpenAI/Python 1.50.0"),
           (b"Accept", b"application/json"), (b"Authorization", b"Bearer sk-x")]
    cases = {
        "fast lane POST (hot path)": FastRequest(None, None, "/v1/chat/completions", "", raw),  # type: ignore[arg-type]
        "aiohttp GET, client": make_mocked_request("GET", "/api/v1/workers",
                                                   headers={"User-Agent": "curl/8.5"}),
        "aiohttp GET, eldric": make_mocked_request("GET", "/api/v1/workers",
                                                   headers={"User-Agent": "eldric/0.1.0"}),
        "aiohttp GET /health": make_mocked_request("GET", "/health"),
    }
    for name, request in cases.items():
        best = min(timeit.repeat(lambda r=request: _access_writer(r), number=N, repeat=5))
        print(f"{name:<28} {best / N * 1e9:7.1f} ns")


if __name__ == "__main__":
    main()
