"""Usage counted on the edge's request path: real edge, router and worker (the mock
backend), counted exactly from what the replies state, asserted through /metrics and the
records the edge hands its recorder."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.conftest import until
from tests.roles.edge_usage.helpers import cluster, metrics, records

MODEL = "eldric-mock"
MOCK_TOKENS = 16  # the mock's completion unless max_tokens is lower


def _chat(i: int) -> dict:
    words = " ".join(f"w{j}" for j in range(1 + i % 7))
    return {"model": MODEL, "messages": [{"role": "user", "content": words}],
            "max_tokens": 1 + i % MOCK_TOKENS}


def _expected(body: dict) -> tuple[int, int]:
    """What the mock states: prompt = the message's words + 1, completion = max_tokens."""
    words = sum(len(m["content"].split()) for m in body["messages"])
    return words + 1, min(MOCK_TOKENS, body["max_tokens"])


async def _one(s: aiohttp.ClientSession, edge: str, i: int) -> None:
    body = _chat(i)
    kind = i % 5  # 0, 1: whole; 2: stream; 3: stream asking for usage; 4: abandoned
    if kind in (2, 3, 4):
        body["stream"] = True
    if kind == 3:
        body["stream_options"] = {"include_usage": True}
    if kind == 4:
        body["max_tokens"] = MOCK_TOKENS
    async with s.post(edge + "/v1/chat/completions", json=body) as r:
        assert r.status == 200, await r.text()
        if kind == 4:
            seen = b""
            while seen.count(b"data: ") < 4:  # the role and 3 words, then the client leaves
                seen += await r.content.readany()
            r.close()
            return
        await r.read()


async def test_exact_sums_over_100_mixed_requests(tmp_path):
    async with cluster(tmp_path, worker_flags={"mock_token_delay": "30ms"}) as (edge, worker):
        sem = asyncio.Semaphore(20)

        async def bounded(s, i):
            async with sem:
                await _one(s, edge, i)

        async with aiohttp.ClientSession() as s:
            await asyncio.gather(*(bounded(s, i) for i in range(100)))
        rows = await until(lambda: len(records(edge)) == 100 and records(edge), timeout=15)
        prompt = completion = 0
        for i in range(100):
            if i % 5 != 4:
                p, c = _expected(_chat(i))
                prompt, completion = prompt + p, completion + c
        done = [r for r in rows if not r.abandoned]
        left = [r for r in rows if r.abandoned]
        assert len(done) == 80 and len(left) == 20
        assert sum(r.tokens.prompt for r in done) == prompt
        assert sum(r.tokens.completion for r in done) == completion
        assert not any(r.tokens.estimated for r in done)
        # the 20 that left: what was sent (3 words at least), estimated, less than the whole
        assert all(r.stream and r.tokens.estimated and r.tokens.prompt > 0 for r in left)
        assert all(3 <= r.tokens.completion < MOCK_TOKENS for r in left)
        assert {r.backend for r in rows} == {worker}  # the worker that answered
        m = await metrics(edge)
        key = ("eldric_edge_tokens_total", "anonymous", MODEL)
        assert m[(*key, "prompt")] == sum(r.tokens.prompt for r in rows)
        assert m[(*key, "completion")] == sum(r.tokens.completion for r in rows)
        assert all(r.client == "anonymous" and r.model == MODEL and r.status == 200
                   and r.path == "/v1/chat/completions" for r in rows)


async def _events(s, edge, body) -> list[dict]:
    async with s.post(edge + "/v1/chat/completions", json=body) as r:
        assert r.status == 200
        raw = await r.read()
    return [json.loads(line[6:]) for line in raw.decode().split("\n\n")
            if line.startswith("data: {")]


async def test_usage_chunk_taken_out_unless_asked(tmp_path):
    async with cluster(tmp_path) as (edge, _):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "a b c"}],
                "stream": True}
        async with aiohttp.ClientSession() as s:
            plain = await _events(s, edge, body)
            asked = await _events(s, edge, {**body, "stream_options": {"include_usage": True}})
            told_no = await _events(s, edge, {**body,
                                              "stream_options": {"include_usage": False}})
            null = await _events(s, edge, {**body, "stream_options": None})
        assert plain and all(e["choices"] for e in plain)  # no usage chunk
        assert all(e["choices"] for e in told_no + null)
        last = asked[-1]
        assert last["choices"] == [] and last["usage"] == {
            "prompt_tokens": 4, "completion_tokens": MOCK_TOKENS,
            "total_tokens": 4 + MOCK_TOKENS}
        rows = await until(lambda: len(records(edge)) == 4 and records(edge))
        assert [(r.tokens.prompt, r.tokens.completion, r.tokens.estimated) for r in rows] \
            == [(4, MOCK_TOKENS, False)] * 4  # counted from the usage asked for


async def test_usage_off_is_todays_path(tmp_path):
    async with cluster(tmp_path, usage="off") as (edge, _):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "a b c"}],
                "stream": True}
        async with aiohttp.ClientSession() as s:
            events = await _events(s, edge, body)
            async with s.get(edge + "/api/v1/usage") as r:  # nothing counts, nowhere
                assert r.status == 404 and (await r.json())["error"]["code"] == "usage_off"
        assert events and "usage" not in events[0]  # never asked for it
        assert await metrics(edge) == {}


async def test_refused_and_failed_requests_count_no_tokens(tmp_path):
    async with cluster(tmp_path) as (edge, _):
        async with aiohttp.ClientSession() as s:
            async with s.post(edge + "/v1/chat/completions",
                              json={"model": "no-such-model", "messages": []}) as r:
                refused = r.status
            async with s.post(edge + "/v1/chat/completions", data=b"{") as r:
                bad = r.status
        assert refused >= 400 and bad == 400
        rows = await until(lambda: len(records(edge)) == 1 and records(edge))
        (row,) = rows  # the bad body is refused before any counting (as it always was)
        assert row.status == refused and row.tokens.total == 0 and row.model == "no-such-model"
