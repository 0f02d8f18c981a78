import pytest

from eldric.stream.headers import downstream_headers, upstream_header_block


def test_upstream_headers_drop_hop_by_hop_and_credentials():
    incoming = {"Host": "edge", "Connection": "keep-alive", "Keep-Alive": "timeout=5",
                "Transfer-Encoding": "chunked", "Content-Length": "10", "TE": "trailers",
                "Authorization": "Bearer client", "X-API-Key": "client", "Cookie": "a=b",
                "Accept-Encoding": "gzip", "X-Request-ID": "spoofed",
                "Content-Type": "application/json", "traceparent": "00-abc-def-01",
                "OpenAI-Beta": "assistants=v2", "User-Agent": "OpenAI/Python"}
    raw = [(k.encode(), v.encode()) for k, v in incoming.items()]
    out = upstream_header_block(raw, "rid-1", {"Authorization": "Bearer backend"})
    assert out == (b"Content-Type: application/json\r\ntraceparent: 00-abc-def-01\r\n"
                   b"OpenAI-Beta: assistants=v2\r\nUser-Agent: OpenAI/Python\r\n"
                   b"X-Request-ID: rid-1\r\nAuthorization: Bearer backend\r\n")


def test_extra_headers_cannot_smuggle_lines():
    with pytest.raises(ValueError):
        upstream_header_block([], "r", {"Authorization": "Bearer x\r\nX-Evil: 1"})


def test_downstream_headers_keep_content_headers_only():
    up = {"Content-Type": "text/event-stream", "Content-Length": "5", "Connection": "close",
          "Transfer-Encoding": "chunked", "Date": "x", "Server": "uvicorn",
          "X-Request-ID": "other", "Cache-Control": "no-cache", "Content-Encoding": "gzip",
          "Access-Control-Allow-Origin": "*", "access-control-allow-credentials": "true",
          "Access-Control-Expose-Headers": "X-Secret"}
    assert dict(downstream_headers(up.items())) == {
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "Content-Encoding": "gzip"}
    twice = downstream_headers([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    assert twice == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
