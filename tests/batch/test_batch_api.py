"""The Batch API through edge → router → worker with the openai SDK: upload, create, poll
to completed, the output and error files, ownership, list paging."""

from __future__ import annotations

import openai
import pytest

from tests.batch.helpers import chain, finished, jsonl, line, output, sdk
from tests.fakes import openai_server


async def test_a_batch_runs_to_completed_with_output_and_error_files(aiohttp_server, tmp_path):
    worker = await aiohttp_server(openai_server.make_app())
    async with chain(tmp_path, worker) as url:
        client = sdk(url)
        rows = [line(f"req-{i}") for i in range(6)] + [line("bad", model="no-such-model")]
        f = await client.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
        assert f.object == "file" and f.purpose == "batch" and f.bytes == len(jsonl(rows))
        assert (await client.files.retrieve(f.id)).id == f.id
        b = await client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                        completion_window="24h", metadata={"team": "a"})
        assert b.object == "batch" and b.status in ("validating", "in_progress")
        assert b.request_counts.total == 7 and b.metadata == {"team": "a"}
        b = await finished(client, b.id)
        assert b.status == "completed", b
        assert (b.request_counts.completed, b.request_counts.failed) == (6, 1)
        assert b.completed_at and b.in_progress_at and b.finalizing_at
        out = await output(client, b.output_file_id)
        assert sorted(out) == [f"req-{i}" for i in range(6)]
        one = out["req-0"]
        assert one["id"].startswith("batch_req_") and one["error"] is None
        assert one["response"]["status_code"] == 200 and one["response"]["request_id"]
        assert one["response"]["body"]["object"] == "chat.completion"
        err = await output(client, b.error_file_id)
        assert list(err) == ["bad"]
        assert err["bad"]["response"]["status_code"] == 404
        assert err["bad"]["response"]["body"]["error"]["code"]
        meta = await client.files.retrieve(b.output_file_id)
        assert meta.purpose == "batch_output"
        # every line went upstream at batch priority
        seen = worker.app[openai_server.KNOBS].requests
        assert seen and all(r["headers"].get("X-Eldric-Priority") == "batch" for r in seen)


async def test_another_key_sees_nothing_and_lists_page(aiohttp_server, tmp_path):
    worker = await aiohttp_server(openai_server.make_app())
    async with chain(tmp_path, worker) as url:
        mine, theirs = sdk(url, "k1"), sdk(url, "k2")
        f = await mine.files.create(file=("in.jsonl", jsonl([line("a")])), purpose="batch")
        ids = []
        for _ in range(3):
            b = await mine.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                          completion_window="24h")
            ids.append(b.id)
        for call in (theirs.files.retrieve(f.id), theirs.files.content(f.id),
                     theirs.batches.retrieve(ids[0]), theirs.batches.cancel(ids[0]),
                     theirs.files.delete(f.id),
                     theirs.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                           completion_window="24h")):
            with pytest.raises(openai.NotFoundError):
                await call
        assert [x.id async for x in theirs.batches.list()] == []
        assert [x.id async for x in theirs.files.list()] == []
        page = await mine.batches.list(limit=2)
        assert [x.id for x in page.data] == ids[::-1][:2] and page.has_more
        assert [x.id async for x in mine.batches.list(limit=2)] == ids[::-1]  # paged by after
        for i in ids:
            await finished(mine, i)
        gone = await mine.files.delete(f.id)
        assert gone.deleted and gone.id == f.id
        with pytest.raises(openai.NotFoundError):
            await mine.files.retrieve(f.id)


async def test_no_key_is_refused(aiohttp_server, tmp_path):
    worker = await aiohttp_server(openai_server.make_app())
    async with chain(tmp_path, worker) as url:
        with pytest.raises(openai.AuthenticationError):
            await sdk(url, "wrong").batches.list()
