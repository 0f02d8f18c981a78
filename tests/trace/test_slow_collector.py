"""A collector that takes the connection and never answers (hung, or a black-holed
network): requests are not slowed, and the process's exit is bounded by the tracer's
shutdown grace, however many spans wait for export."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest

from tests.conftest import run_eldric, url_of
from tests.fakes.openai_server import MODELS

pytest.importorskip("opentelemetry.sdk")

CHAT = {"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}


async def test_a_hung_collector_slows_neither_requests_nor_exit(fake_openai_server, tmp_path,
                                                               monkeypatch):
    from eldric.trace import otel

    # A shorter grace than a role's 6 s (the test's time), and an export timeout longer
    # than it: what is still queued at exit needs longer than the grace, which exit must
    # not wait for (the SDK's own shutdown would wait 30 s).
    monkeypatch.setattr(otel, "_EXPORT_TIMEOUT_S", 3.0)
    monkeypatch.setattr(otel, "_GRACE_S", 1.0)
    finished = []
    shutdown = otel.Tracing.shutdown

    def recorded(self, grace=None):  # type: ignore[no-untyped-def]
        finished.append(shutdown(self, grace))
        return finished[-1]

    monkeypatch.setattr(otel.Tracing, "shutdown", recorded)
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # the kernel completes connects; nobody reads or answers
    endpoint = f"http://127.0.0.1:{hung.getsockname()[1]}"
    try:
        async with run_eldric("worker", tmp_path, backend="vllm", port=0, bind="127.0.0.1",
                              backend_url=url_of(fake_openai_server),
                              otel_endpoint=endpoint) as w:
            async with aiohttp.ClientSession() as s:
                async def one() -> float:
                    t = time.perf_counter()
                    async with s.post(w["worker"] + "/v1/chat/completions",
                                      json=CHAT) as resp:
                        assert resp.status == 200
                        await resp.read()
                    return time.perf_counter() - t
                # 600 requests: 1200 spans queued, several export batches behind a
                # collector each of whose exports waits out its timeout
                took = []
                for _ in range(75):
                    took += await asyncio.gather(*(one() for _ in range(8)))
                assert max(took) < 1.0
            stop = time.perf_counter()
        assert time.perf_counter() - stop < 1.0 + 3.0  # the shutdown grace, not 30 s
        assert finished == [False]  # cut at the grace: spans were still queued
    finally:
        hung.close()
