"""SIGTERM mid-stream: the stream completes, new connections are refused, then exit 0."""

from __future__ import annotations

import http.client
import signal
import socket
import time

from tests.conftest import free_port


def _stream_under_way(eldric_proc, tmp_path, tokens: int, grace_ms: int):
    """A worker on the mock backend (100 ms a token) with one stream already flowing."""
    port = free_port()
    proc = eldric_proc("--role", "worker", "--backend", "mock", "--bind", "127.0.0.1",
                       "--port", str(port), "--data-dir", str(tmp_path),
                       "--mock-tokens", str(tokens), "--mock-token-delay", "100",
                       "--grace-period", str(grace_ms))
    proc.wait_http(f"http://127.0.0.1:{port}/health")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/v1/chat/completions",
                 body=b'{"model":"eldric-mock","stream":true,'
                      b'"messages":[{"role":"user","content":"hi"}]}',
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read1(65536).startswith(b"data: ")  # the stream is under way
    return proc, port, resp


def test_sigterm_lets_the_stream_finish_and_refuses_new_connections(eldric_proc, tmp_path):
    proc, port, resp = _stream_under_way(eldric_proc, tmp_path, tokens=20, grace_ms=10000)
    proc.p.send_signal(signal.SIGTERM)
    t_signal = time.monotonic()
    refused = False
    while time.monotonic() - t_signal < 1.5:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except ConnectionRefusedError:
            refused = True
            break
        time.sleep(0.05)
    assert refused, "new connections still accepted after SIGTERM"

    rest = resp.read()  # the in-flight stream runs to its end
    assert rest.rstrip().endswith(b"data: [DONE]")
    assert rest.count(b'"content":') >= 19
    assert proc.p.wait(10) == 0
    out = proc.stop()
    assert "shutting_down" in out and "stopped" in out


def test_grace_period_bounds_a_stream_that_would_not_end(eldric_proc, tmp_path):
    proc, _port, _resp = _stream_under_way(eldric_proc, tmp_path, tokens=1000, grace_ms=500)
    t0 = time.monotonic()
    proc.p.send_signal(signal.SIGTERM)
    assert proc.p.wait(10) == 0
    assert time.monotonic() - t0 < 5  # not the 100 s the stream would take
