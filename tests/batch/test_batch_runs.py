"""The runner's lifecycle: cancel, a restart mid-batch resumed, a router deferring
(503 batch_deferred, Retry-After) waited out, a worker killed mid-batch."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from tests.batch.helpers import MODEL, calls, chain, edge, finished, jsonl, line, output, sdk
from tests.conftest import run_eldric, until, url_of
from tests.fakes import openai_server
from tests.fakes.openai_server import KNOBS


async def _batch(client, rows):  # type: ignore[no-untyped-def]
    f = await client.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
    return await client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")


async def test_cancel_runs_no_line_not_started(aiohttp_server, tmp_path):
    worker = await aiohttp_server(openai_server.make_app())
    worker.app[KNOBS].hold = 0.3
    async with chain(tmp_path, worker, batch_concurrency=1) as url:
        client = sdk(url)
        b = await _batch(client, [line(f"c{i}") for i in range(6)])
        await until(lambda: worker.app[KNOBS].requests, timeout=5)
        c = await client.batches.cancel(b.id)
        assert c.status == "cancelling" and c.cancelling_at
        b = await finished(client, b.id)
        assert b.status == "cancelled" and b.cancelled_at
        assert 1 <= b.request_counts.completed <= 2 and b.request_counts.total == 6
        await asyncio.sleep(0.4)
        assert sum(calls(worker).values()) == b.request_counts.completed  # no other ran
        assert len(await output(client, b.output_file_id)) == b.request_counts.completed
        again = await client.batches.cancel(b.id)  # cancelling a cancelled batch: as it is
        assert again.status == "cancelled"


async def test_a_restart_resumes_and_never_runs_a_done_line_twice(aiohttp_server, tmp_path):
    worker = await aiohttp_server(openai_server.make_app())
    worker.app[KNOBS].hold = 0.15
    n = 8
    async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                          workers=url_of(worker)) as r:
        async with edge(tmp_path, r["router"], batch_concurrency=2) as url:
            client = sdk(url)
            b = await _batch(client, [line(f"r{i}") for i in range(n)])

            async def some_done():  # type: ignore[no-untyped-def]
                got = await client.batches.retrieve(b.id)
                return got.request_counts.completed >= 2
            await until(some_done, timeout=10)
            before = (await client.batches.retrieve(b.id)).request_counts.completed
        assert before < n
        async with edge(tmp_path, r["router"], batch_concurrency=2) as url:
            client = sdk(url)
            done = await finished(client, b.id)
            out = await output(client, done.output_file_id)
    assert done.status == "completed" and done.request_counts.completed == n
    assert sorted(out) == sorted(f"r{i}" for i in range(n))  # each line answered once
    counted = calls(worker)
    assert set(counted) == {f"r{i}" for i in range(n)}
    # at most the lines in flight at the stop (2) were sent twice; none done was
    assert sum(counted.values()) <= n + 2 and max(counted.values()) <= 2


def _deferring_router():  # type: ignore[no-untyped-def]
    """A router as issue 22's F answers: 503 batch_deferred with Retry-After the first
    time each line comes, then the reply; "hard" is an ordinary 503 (the line's error)."""
    seen: dict[str, int] = {}
    prio: list[str] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        cid = body["messages"][-1]["content"]
        seen[cid] = seen.get(cid, 0) + 1
        prio.append(request.headers.get("X-Eldric-Priority", ""))
        if cid == "hard":
            return web.json_response({"error": {"message": "no worker", "type": "api_error",
                                                "param": None, "code": "upstream_unavailable"}},
                                     status=503)
        if seen[cid] == 1:
            return web.json_response({"error": {"message": "no idle capacity",
                                                "type": "api_error", "param": None,
                                                "code": "batch_deferred"}},
                                     status=503, headers={"Retry-After": "1"})
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
            "model": MODEL, "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": "ok " + cid}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app, seen, prio


async def test_a_deferral_is_waited_out_never_the_lines_failure(aiohttp_server, tmp_path):
    app, seen, prio = _deferring_router()
    router = await aiohttp_server(app)
    async with edge(tmp_path, url_of(router), batch_concurrency=4) as url:
        client = sdk(url)
        t0 = time.monotonic()
        b = await _batch(client, [line(f"d{i}") for i in range(3)] + [line("hard")])
        b = await finished(client, b.id)
        took = time.monotonic() - t0
        assert b.status == "completed"
        assert (b.request_counts.completed, b.request_counts.failed) == (3, 1)
        assert took >= 1.0  # the Retry-After was honoured
        out = await output(client, b.output_file_id)
        assert out["d0"]["response"]["body"]["choices"][0]["message"]["content"] == "ok d0"
        err = await output(client, b.error_file_id)
        assert err["hard"]["response"]["status_code"] == 503
        assert err["hard"]["response"]["body"]["error"]["code"] == "upstream_unavailable"
    assert {seen[f"d{i}"] for i in range(3)} == {2} and seen["hard"] == 1
    assert set(prio) == {"batch"}


async def test_a_router_down_makes_the_line_an_error_entry(tmp_path):
    async with edge(tmp_path, "http://127.0.0.1:9") as url:
        client = sdk(url)
        b = await finished(client, (await _batch(client, [line("x")])).id)
        assert b.status == "completed" and b.request_counts.failed == 1
        err = await output(client, b.error_file_id)
        assert err["x"]["response"] is None
        assert err["x"]["error"]["code"] == "upstream_unavailable"
        assert b.output_file_id is None


async def test_a_worker_killed_mid_batch_the_batch_completes(aiohttp_server, tmp_path):
    a = await aiohttp_server(openai_server.make_app())
    b_ = await aiohttp_server(openai_server.make_app())
    for w in (a, b_):
        w.app[KNOBS].hold = 0.1
    async with chain(tmp_path, a, b_, batch_concurrency=2) as url:
        client = sdk(url)
        b = await _batch(client, [line(f"k{i}") for i in range(8)])
        await until(lambda: a.app[KNOBS].requests, timeout=5)
        await a.close()  # killed: its in-flight request cut, its port closed
        b = await finished(client, b.id, timeout=20)
        assert b.status == "completed"
        counts = b.request_counts
        assert counts.completed + counts.failed == 8 and counts.completed >= 6
        got = {**await output(client, b.output_file_id), **await output(client, b.error_file_id)}
        assert sorted(got) == sorted(f"k{i}" for i in range(8))
    assert sum(calls(b_).values()) >= 6


async def test_the_completion_window_passing_expires_the_batch(aiohttp_server, tmp_path,
                                                                 monkeypatch):
    from eldric.batch import api
    monkeypatch.setattr(api, "WINDOW_S", 1)  # "24h" lasts a second here
    worker = await aiohttp_server(openai_server.make_app())
    worker.app[KNOBS].hold = 0.7
    async with chain(tmp_path, worker, batch_concurrency=1) as url:
        client = sdk(url)
        b = await finished(client, (await _batch(client, [line(f"e{i}") for i in range(4)])).id)
        assert b.status == "expired" and b.expired_at
        c = b.request_counts
        assert c.completed >= 1 and c.completed + c.failed == 4 and c.failed >= 1
        done = await output(client, b.output_file_id)
        late = await output(client, b.error_file_id)
        assert sorted([*done, *late]) == [f"e{i}" for i in range(4)]
        assert {r["error"]["code"] for r in late.values()} == {"batch_expired"}
        assert all(r["response"] is None for r in late.values())
    assert sum(calls(worker).values()) == c.completed  # the late ones never went upstream


async def test_the_input_file_of_a_running_batch_cannot_be_deleted(aiohttp_server, tmp_path):
    """Deleted mid-batch, a restart could not resume it (its lines are read from the file):
    refused with 409 while the batch lives, deletable once it ended."""
    import openai

    worker = await aiohttp_server(openai_server.make_app())
    worker.app[KNOBS].hold = 0.2
    async with chain(tmp_path, worker, batch_concurrency=1) as url:
        client = sdk(url)
        b = await _batch(client, [line(f"d{i}") for i in range(3)])
        try:
            await client.files.delete(b.input_file_id)
        except openai.APIStatusError as exc:
            assert exc.status_code == 409 and exc.body["code"] == "file_in_use"
        else:
            raise AssertionError("the input file of a live batch was deleted")
        b = await finished(client, b.id)
        assert b.status == "completed" and b.request_counts.completed == 3
        assert (await client.files.delete(b.input_file_id)).deleted
