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


async def test_a_hung_collector_slows_neither_requests_nor_exit(fake_openai_server, tmp_path):
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
        assert time.perf_counter() - stop < 9.0  # the shutdown grace, not 30 s or more
    finally:
        hung.close()
