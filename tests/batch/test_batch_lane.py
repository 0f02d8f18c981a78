"""The Batch API on the router's real batch lane, end to end through the openai SDK: a
slow worker taking one request at a time, a batch and interactive traffic together. The
batch completes; no interactive request waits behind more than one batch line."""

from __future__ import annotations

import asyncio

from tests.batch.helpers import edge, finished, jsonl, sdk
from tests.conftest import free_port, run_eldric, url_of
from tests.fakes import worker as fake_worker
from tests.fakes.worker import KNOBS

DELAY = 0.3


async def test_batch_on_idle_capacity_never_delays_interactive(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake_worker.make_app("a", ["m1"], None), port=free_port())
    knobs = server.app[KNOBS]
    knobs.max_concurrency, knobs.delay = 1, DELAY
    rows = [{"custom_id": f"l{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "m1", "messages": [{"role": "user", "content": f"l{i}"}]}}
            for i in range(5)]
    async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                          workers=url_of(server), batch_wait=2000) as r:
        async with edge(tmp_path, r["router"], batch_concurrency=4, global_rpm=0,
                        per_ip_rpm=0, per_key_rpm=0) as url:
            client = sdk(url)
            f = await client.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
            b = await client.batches.create(input_file_id=f.id,
                                            endpoint="/v1/chat/completions",
                                            completion_window="24h")
            loop = asyncio.get_running_loop()
            took = []
            for _ in range(6):  # interactive traffic while the batch runs
                t0 = loop.time()
                reply = await client.chat.completions.create(
                    model="m1", messages=[{"role": "user", "content": "now"}])
                took.append(loop.time() - t0)
                assert reply.choices
                await asyncio.sleep(0.05)
            b = await finished(client, b.id, timeout=20)
            assert b.status == "completed" and b.request_counts.completed == 5, b
            # one batch line's time on the worker, then its own, plus the hops
            assert max(took) < DELAY * 2 + 0.25, took
